// Runaway agents: a throw in run(), an unhandled rejection, a throw in a timer, heap exhaustion,
// a busy loop and too much ArrayBuffer memory are each stopped and reported (typed error and one
// log line) while another agent on the same host keeps echoing bytes. ctx.log is rate limited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Identity } from '../../../src/identity/index.js';
import { connectWhenListening, echoRoundTrip, fixture, linesOf, startAgentNet } from '../../helpers/agents.js';

const CASES: [mode: string, code: string][] = [
  ['throw', 'FERRY_ERR_AGENT_CRASHED'],
  ['reject-later', 'FERRY_ERR_AGENT_CRASHED'],
  ['throw-in-timer', 'FERRY_ERR_AGENT_CRASHED'],
  ['oom', 'FERRY_ERR_AGENT_MEMORY'],
  ['busy', 'FERRY_ERR_AGENT_UNRESPONSIVE'],
  ['external', 'FERRY_ERR_AGENT_MEMORY'],
];

test('crash, OOM, busy loop and external memory are stopped and reported; a neighbour keeps working', async () => {
  const owner = Identity.generate();
  const small = Identity.generate(); // its agents get a 16 MiB heap
  const policy = {
    version: 1,
    owners: {
      [owner.id]: { land: true, listen: true, connect: '*' },
      [small.id]: { land: true, limits: { maxHeapMb: 16 } },
    },
  };
  const net = await startAgentNet(1, { owner, policies: [policy], runtime: { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 3000, externalMb: 64 } });
  try {
    const echo = await net.launch(0, fixture('echo.mjs'));
    const sock = await connectWhenListening(net.hosts[0]!, echo.id);
    const code = fixture('misbehave.mjs');
    const handles = await Promise.all(CASES.map(([mode]) => net.launch(0, code, { state: { mode }, owner: small, rights: {} })));
    // The neighbour echoes while the others misbehave.
    await echoRoundTrip(sock, 1, 100_000);
    const exits = await Promise.all(handles.map((h) => h.exited));
    for (const [i, [mode, code]] of CASES.entries()) {
      const exit = exits[i]!;
      assert.equal(exit.reason, 'failed', mode);
      assert.equal(exit.error?.code, code, `${mode}: ${exit.error?.message}`);
      const lines = linesOf(net.log, 'agent_stopped').filter((l) => l.fields.agent === handles[i]!.id);
      assert.equal(lines.length, 1, `${mode}: one log line`);
      assert.equal(lines[0]!.level, 'warn');
      assert.equal(lines[0]!.fields.code, code);
    }
    assert.match(exits[0]!.error!.message, /agent bug/);
    assert.match(exits[1]!.error!.message, /nobody handles this/);
    await echoRoundTrip(sock, 2, 100_000);
    assert.deepEqual(net.runtimes[0]!.agentIds(), [echo.id]);
    sock.destroy();
  } finally {
    await net.close();
  }
});

test('stopping an agent aborts its connections: the peer learns at once', async () => {
  const net = await startAgentNet(1);
  try {
    const echo = await net.launch(0, fixture('echo.mjs'));
    const sock = await connectWhenListening(net.hosts[0]!, echo.id);
    await echoRoundTrip(sock, 3, 10_000);
    const error = new Promise<Error>((resolve) => sock.once('error', resolve));
    const exit = await net.runtimes[0]!.stop(echo.id);
    assert.equal(exit.reason, 'stopped');
    assert.equal(exit.error?.code, 'FERRY_ERR_ABORTED');
    assert.equal(((await error) as { code?: string }).code, 'FERRY_ERR_PEER_ABORTED');
  } finally {
    await net.close();
  }
});

test('ctx.log is cut and rate limited; the drop is reported once', async () => {
  const net = await startAgentNet(1);
  try {
    const exit = await (await net.launch(0, fixture('misbehave.mjs'), { state: { mode: 'log-flood' } })).exited;
    assert.equal(exit.reason, 'finished');
    const lines = linesOf(net.log, 'agent_log');
    assert.ok(lines.length <= 100, `${lines.length} lines passed`);
    for (const l of lines) assert.ok(String(l.fields.text).length <= 2049);
    const dropped = linesOf(net.log, 'agent_log_dropped');
    assert.equal(dropped.length, 1);
    assert.ok((dropped[0]!.fields.lines as number) >= 900);
  } finally {
    await net.close();
  }
});
