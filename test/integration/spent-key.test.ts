// Scenario: a data socket's session key runs out (AEAD_MAX_BLOCKS) just before the connection
// seals a control frame on it: the in-band SUSPEND, the DRAIN that answers the peer's, or a FIN. Sealing refuses
// (FERRY_ERR_LIMIT_EXCEEDED, never a nonce reuse). The socket must end like a lost one, and the
// connection go on with new keys on a new socket, every byte exactly once, instead of the error
// escaping from the middle of a state transition.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import { AEAD_MAX_BLOCKS } from '../../src/identity/index.js';
import { connectedPair, dataSocketsOf, pattern, Reader, startHosts, waitFor } from '../helpers/harness.js';

/** Spend the sending key of `sock`'s current data socket (test-only reach into the internals). */
function spendSendKey(sock: AgentSocket): void {
  const sealer = (dataSocketsOf(sock.endpoint).data as unknown as { sealer?: { blocks: number } } | undefined)?.sealer;
  assert.ok(sealer, 'a sealed data socket is attached');
  assert.equal(typeof sealer.blocks, 'number');
  sealer.blocks = AEAD_MAX_BLOCKS;
}

const LABEL = { suspend: 'an in-band SUSPEND', 'peer-suspend': 'the DRAIN that answers the peer\'s SUSPEND', end: 'a FIN' } as const;

for (const what of ['suspend', 'peer-suspend', 'end'] as const) {
  test(`a session key spent right before ${LABEL[what]}: the socket is replaced and the stream goes on exactly once`, { timeout: 30_000 }, async () => {
    const net = await startHosts(2);
    try {
      const [a, b] = await connectedPair(net);
      const got = new Reader();
      got.attach(b);
      const errors: Error[] = [];
      a.on('error', (e: Error) => errors.push(e));
      b.on('error', (e: Error) => errors.push(e));
      a.write(pattern(5, 0, 100_000));
      await waitFor(() => got.length === 100_000, 5000, 'first bytes');
      const before = a.endpoint.stats.sockets;
      spendSendKey(a);
      a.write(pattern(5, 100_000, 50_000)); // queued: the next DATA frame cannot be sealed either
      if (what === 'suspend') {
        await a.suspend();
        assert.equal(a.state, 'SUSPENDED');
        await waitFor(() => b.state === 'SUSPENDED', 5000, 'peer suspended');
        await a.resumeConnection();
        a.end();
      } else if (what === 'peer-suspend') {
        await b.suspend();
        await waitFor(() => a.state === 'SUSPENDED', 5000, 'a suspended by its peer');
        await b.resumeConnection();
        a.end();
      } else {
        a.end();
      }
      await waitFor(() => got.length === 150_000 && b.readableEnded, 10_000, 'every byte and the end');
      assert.ok(got.bytes().equals(pattern(5, 0, 150_000)), 'exactly once, in order');
      assert.ok(a.endpoint.stats.sockets > before, 'a new data socket (new keys) carried the rest');
      assert.deepEqual(errors, []);
    } finally {
      await net.close();
    }
  });
}
