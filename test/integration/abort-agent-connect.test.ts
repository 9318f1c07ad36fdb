// Scenario: agent code passes AbortSignals to ctx.connect (the call crosses the worker boundary to
// its host). An already-aborted signal rejects at once with FERRY_ERR_ABORTED (an AbortError, cause
// the reason). An abort while the open waits on a host that does not answer rejects at once, and
// the host calls the open off: its CONNECT stops being retransmitted and no connection is left.
// The agent's next connect (to an echo) works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Host } from '../../src/host/index.js';
import { MessageType } from '../../src/wire/index.js';
import { tapper } from '../helpers/attacker.js';
import { connectWhenListening, fixture, linesOf, startChannelNet } from '../helpers/agents.js';
import { waitFor } from '../helpers/harness.js';

test('ctx.connect with an AbortSignal: already aborted, aborted while pending, then a connect that works', async () => {
  const taps = tapper();
  // UDP opens (not in-band), so that a silent control socket leaves the open pending.
  const net = await startChannelNet(3, { host: { inbandOpen: false, wrapControlSocket: taps.wrap } });
  try {
    const [h0, , h2] = net.hosts as [Host, Host, Host];
    const echo = await net.launch(1, fixture('echo.mjs'));
    (await connectWhenListening(h0, echo.id)).destroy();
    const silent = await h2.addAgent();
    h2.listen(silent.id);
    taps.taps[2]!.silent = true;
    const sourceTap = taps.taps[0]!;
    const agent = await net.launch(0, fixture('connect-abort.mjs'), { state: { peer: echo.id, silent: silent.id } });
    await waitFor(() => linesOf(net.log, 'agent_log').some((l) => String(l.fields.text) === 'connect pending'), 10_000, 'the open pending');
    const exit = await agent.exited;
    assert.equal(exit.reason, 'finished', exit.error?.message);
    assert.deepEqual(exit.result, {
      already: 'FERRY_ERR_ABORTED/AbortError/never mind',
      aborted: 'FERRY_ERR_ABORTED/AbortError/too slow',
      echo: 'ping',
    });
    // The host called the open off: no CONNECT to the silent host after the abort, where one
    // left unaborted is sent again every RTO (100 ms doubling) until the handshake timeout.
    const toSilent = (): number => sourceTap.sentRequests(MessageType.CONNECT).filter((s) => s.to === h2.controlAddress).length;
    const atEnd = toSilent();
    assert.ok(atEnd >= 1, 'a CONNECT went to the silent host');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(toSilent(), atEnd, 'no CONNECT retransmitted after the abort');
    assert.equal(h0.socketsOf(agent.id).some((s) => s.remoteAgent === silent.id), false, 'no connection to the silent agent');
  } finally {
    taps.taps[2]!.silent = false;
    await net.close();
  }
});
