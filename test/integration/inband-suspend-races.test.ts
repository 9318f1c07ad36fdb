// Scenario: races around the in-band SUSPEND and RESUME (PROTOCOL §6.2, §6.3), found in review.
// 1. DATA the peer had in flight when our SUSPEND went out arrives after our DRAIN. Its ACK cannot
//    go on the drained socket; after the reuse the peer rewinds to our DRAIN's offset and must
//    still learn what we have, or it resends forever (and stalls once that fills the window).
// 2. An in-band RESUME carries no control counter, so a SUS datagram sent after it can overtake
//    it (UDP against a slow TCP segment). The peer must not take the older RESUME once it has
//    acknowledged the newer SUS: the user's last word (or the move) wins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import { connectedPair, dataSocketsOf, delayDataSocket, outcomeOf, pattern, Reader, startHosts, waitFor } from '../helpers/harness.js';

type TestNet = Awaited<ReturnType<typeof startHosts>>;

/** Two hosts and a connection between a new agent on each, ESTABLISHED. */
async function pair(): Promise<{ net: TestNet; a: AgentSocket; b: AgentSocket }> {
  const net = await startHosts(2);
  const [a, b] = await connectedPair(net);
  return { net, a, b };
}

for (const [bytes, cycles] of [
  [3_000_000, 1],
  [600_000, 5],
] as const) {
  test(`bytes in flight under an in-band SUSPEND are acknowledged after the reuse (${cycles} x ${bytes} bytes)`, { timeout: 60_000 }, async () => {
    const { net, a, b } = await pair();
    try {
      const got = new Reader();
      got.attach(a);
      let total = 0;
      for (let i = 0; i < cycles; i++) {
        // b's pump runs at setImmediate: a's SUSPEND goes out first and b's DATA crosses it.
        b.write(pattern(3, total, bytes));
        total += bytes;
        await a.suspend();
        await waitFor(() => b.state === 'SUSPENDED', 5000, 'b suspended');
        await a.resumeConnection();
        await waitFor(() => got.length === total, 10_000, `every byte at a, cycle ${i}`);
        // Before the fix b's acked stayed at a's DRAIN offset, and with 3 MB it never got here.
        await waitFor(() => b.endpoint.send.acked === total, 5000, `b hears that a has every byte, cycle ${i}`);
      }
      assert.ok(got.bytes().equals(pattern(3, 0, total)), 'exactly once, in order');
      assert.ok(a.endpoint.stats.reused >= cycles, 'the resumes reused the kept socket');
    } finally {
      await net.close();
    }
  });
}

for (const how of ['suspend', 'move'] as const) {
  test(`an in-band RESUME overtaken by a later SUS datagram (${how === 'move' ? 'a move' : 'a user suspend'}) is not taken`, { timeout: 30_000 }, async () => {
    const { net, a, b } = await pair();
    try {
      await a.suspend();
      await waitFor(() => b.state === 'SUSPENDED', 5000, 'b suspended');
      const eb = b.endpoint;
      // b's TCP side is 300 ms slow (a retransmitted segment, a loaded receiver): UDP overtakes.
      delayDataSocket(dataSocketsOf(eb).kept, 300, 'b keeps the drained socket');
      const states: string[] = [];
      eb.on('state', (to: string, from: string) => states.push(`${from}->${to}`));
      const ea = a.endpoint;
      const resume = outcomeOf(ea.resume()); // in-band RESUME on the kept socket
      assert.equal(ea.state, 'RES_SENT');
      // The user changes its mind, or the host starts moving the agent: a SUS datagram.
      if (how === 'move') await ea.prepareMove();
      else await ea.suspend();
      assert.equal(ea.state, 'SUSPENDED');
      await new Promise((r) => setTimeout(r, 1200));
      assert.deepEqual(states.filter((s) => s.endsWith('->ESTABLISHED')), [], 'b never resumed on the older RESUME');
      assert.equal(eb.state, 'SUSPENDED');
      assert.equal(ea.state, 'SUSPENDED', 'a stays suspended');
      // The later call wins: a user suspend overtakes the pending resume (SUPERSEDED); a move's
      // preparation holds it for the destination (it travels in the checkpoint), so it is pending.
      assert.equal(resume(), how === 'move' ? 'pending' : 'FERRY_ERR_SUPERSEDED', 'the resume\'s outcome');
    } finally {
      await net.close();
    }
  });
}
