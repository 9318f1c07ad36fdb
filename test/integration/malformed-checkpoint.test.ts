// Scenario: a destination is handed an agent checkpoint whose connection part is malformed
// (non-canonical base64 in the send buffer, a master secret of the wrong length). It refuses with
// FERRY_ERR_MALFORMED_CHECKPOINT before anything commits: the location epoch is unchanged and
// the agent is not attached there. The untouched checkpoint then attaches and the stream goes on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Host } from '../../src/host/index.js';
import { isFerryError } from '../../src/util/index.js';
import { connectedPair, pattern, Reader, startHosts, waitFor } from '../helpers/harness.js';

test('a malformed connection checkpoint is refused before the commit', async () => {
  const net = await startHosts(3);
  try {
    const [h0, , h2] = net.hosts as [Host, Host, Host];
    const [c, s] = await connectedPair(net);
    const rs = new Reader();
    rs.attach(s);
    c.write(pattern(3, 0, 5000));
    await waitFor(() => rs.length === 5000, 5000, 'first bytes');
    const agent = c.localAgent;
    const cp = await h0.detachAgent(agent);
    const before = (await net.location.lookup(agent))!.epoch;
    for (const mutate of [(e: Record<string, any>) => (e.send = { ...e.send, data: 'bad' }), (e: Record<string, any>) => (e.master = 'ab')]) {
      const bad = JSON.parse(JSON.stringify(cp));
      mutate(bad.endpoints[0]);
      await assert.rejects(h2.attachAgent(bad), (e: unknown) => isFerryError(e, 'FERRY_ERR_MALFORMED_CHECKPOINT'));
      assert.equal((await net.location.lookup(agent))!.epoch, before, 'nothing committed');
      assert.equal(h2.agentIds().includes(agent), false, 'not attached');
    }
    const { sockets } = await h2.attachAgent(JSON.parse(JSON.stringify(cp)));
    sockets[0]!.write(pattern(3, 5000, 3000));
    await waitFor(() => rs.length === 8000, 10_000, 'bytes after the move');
    assert.ok(rs.bytes().equals(pattern(3, 0, 8000)));
  } finally {
    await net.close();
  }
});
