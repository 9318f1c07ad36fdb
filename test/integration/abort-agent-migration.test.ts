// Scenario: an operator moves an agent with code (run by the host's runtime) through
// Host.migrateAgent with an AbortSignal, over the real migration channel. Already aborted, the call
// rejects at once and the agent never froze. Aborted after the detach (at CONFIRM), the move rolls
// back: the runtime thaws the agent here and its connection echoes on, every byte exactly once.
// Aborted once the checkpoint has left (at COMMITTED), the abort is ignored: the agent runs at
// the destination and the same connection echoes on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Host } from '../../src/host/index.js';
import { isAbortError } from '../../src/util/index.js';
import { MigrationStep } from '../../src/wire/index.js';
import { connectWhenListening, echoRoundTrip, fixture, linesOf, startChannelNet } from '../helpers/agents.js';

test('an agent with code: a move aborted before the checkpoint left rolls back, after it completes', async () => {
  let hook: ((side: 'source' | 'destination', step: number) => void) | undefined;
  const net = await startChannelNet(3, { host: { migrationFault: (side, step) => void hook?.(side, step) } });
  const abortAt = (ac: AbortController, step: number): void => {
    hook = (side, s) => {
      if (side === 'source' && s === step) {
        hook = undefined;
        ac.abort('operator changed their mind');
      }
    };
  };
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const to = { ip: h2.ip, redirectorPort: h2.redirectorPort, hostId: h2.id };
    const echo = await net.launch(1, fixture('echo.mjs'));
    const sock = await connectWhenListening(h0, echo.id);
    await echoRoundTrip(sock, 31, 50_000);

    await assert.rejects(h1.migrateAgent(echo.id, to, { signal: AbortSignal.abort('no') }), (e) => isAbortError(e));
    assert.equal(linesOf(net.log, 'agent_reattached').length, 0, 'nothing was detached');

    const ac = new AbortController();
    abortAt(ac, MigrationStep.CONFIRM);
    await assert.rejects(h1.migrateAgent(echo.id, to, { signal: ac.signal }), (e) => isAbortError(e) && (e as Error).cause === 'operator changed their mind');
    assert.deepEqual(net.runtimes[1]!.agentIds(), [echo.id], 'runs on here');
    assert.deepEqual(net.runtimes[2]!.agentIds(), []);
    assert.equal(linesOf(net.log, 'agent_reattached').length, 1, 'it had been detached, and was re-attached');
    await echoRoundTrip(sock, 32, 200_000);

    const late = new AbortController();
    abortAt(late, MigrationStep.COMMITTED);
    await h1.migrateAgent(echo.id, to, { signal: late.signal });
    assert.equal(late.signal.aborted, true);
    assert.deepEqual(net.runtimes[1]!.agentIds(), []);
    assert.deepEqual(net.runtimes[2]!.agentIds(), [echo.id], 'moved');
    await echoRoundTrip(sock, 33, 200_000);
    sock.destroy();
  } finally {
    hook = undefined;
    await net.close();
  }
});
