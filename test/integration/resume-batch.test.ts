// Scenario: an agent with 50 connections (to five agents, ten each) moves while every stream
// carries bytes both ways. Its new host proves all 50 RES with ONE Ed25519 signature: the 50 RES
// datagrams carry one batch (tree size 50, leaves 0..49, each its own audit path, one signature);
// the peers' host verifies that root once and takes the other 49 from its cache of verified
// roots; every stream continues exactly once, and nothing is refused or warned about anywhere.
// A later move back proves the 50 with one more signature.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resumeRootStats, type AgentSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { MemoryLogger } from '../../src/util/index.js';
import { MessageType, RESUME_FLAG_PROOF, decodeConnControl, decodeDatagram, type ConnControl } from '../../src/wire/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';
import { Link, tapper, type Tap } from '../helpers/attacker.js';

const PEERS = 5;
const PER_PEER = 10;

/** The first sends of proven RES a host made since `from` (retransmissions repeat a requestId). */
function provenRes(tap: Tap, from: number): { bytes: number; m: ConnControl }[] {
  const seen = new Set<string>();
  return tap
    .sentRequests(MessageType.RES)
    .slice(from)
    .map((s) => ({ s, d: decodeDatagram(s.msg) }))
    .filter(({ d }) => {
      const k = `${d.header.requestId}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .map(({ s, d }) => ({ bytes: s.msg.length, m: decodeConnControl(Buffer.from(d.body), MessageType.RES) }))
    .filter(({ m }) => (m.reason & RESUME_FLAG_PROOF) !== 0);
}

test('an agent with 50 connections moves: one host signature proves all 50 RES, and every stream continues exactly once', { timeout: 60_000 }, async () => {
  const log = new MemoryLogger();
  const { taps, wrap } = tapper();
  const net = await startHosts(3, { logger: log, wrapControlSocket: wrap });
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const [, tap1, tap2] = taps as [Tap, Tap, Tap];
    const mover = await h1.addAgent();
    const links: Link[] = [];
    for (let p = 0; p < PEERS; p++) {
      const peer = await h0.addAgent();
      const server = h0.listen(peer.id);
      for (let i = 0; i < PER_PEER; i++) {
        const accepted = server.accept();
        const a = await h1.connect(mover.id, peer.id);
        links.push(new Link(a, await accepted, 1000 + 2 * links.length));
      }
    }
    for (const l of links) l.write(4000);
    await Promise.all(links.map((l) => l.settle('before')));

    /** Move the mover from `from` to `to` with bytes in flight; return what its host signed and its peers verified. */
    const move = async (from: Host, to: Host, tap: Tap): Promise<{ roots: number; leaves: number; verified: number; cached: number; sent: { bytes: number; m: ConnControl }[] }> => {
      const signed = { ...to.resumeSigner.stats };
      const checked = resumeRootStats();
      const sentBefore = tap.sentRequests(MessageType.RES).length;
      for (const l of links) l.write(20_000); // in flight across the move
      const moved = await from.moveAgent(mover.id, to);
      assert.equal(moved.sockets.length, links.length);
      for (const sock of moved.sockets) {
        const l = links.find((x) => x.a.endpoint.connectionId.equals(sock.endpoint.connectionId));
        assert.ok(l, 'every moved socket belongs to a link');
        l.follow('a', sock as AgentSocket);
      }
      await waitFor(() => links.every((l) => l.a.state === 'ESTABLISHED' && l.b.state === 'ESTABLISHED'), 15_000, 'all 50 resumed');
      await Promise.all(links.map((l) => l.settle('after the move', 15_000)));
      const checkedAfter = resumeRootStats();
      return {
        roots: to.resumeSigner.stats.roots - signed.roots,
        leaves: to.resumeSigner.stats.leaves - signed.leaves,
        verified: checkedAfter.verified - checked.verified,
        cached: checkedAfter.cached - checked.cached,
        sent: provenRes(tap, sentBefore),
      };
    };

    const there = await move(h1, h2, tap2);
    assert.equal(there.roots, 1, 'one host signature for the whole move');
    assert.equal(there.leaves, 50);
    assert.equal(there.verified, 1, 'the peers\' host verified one root signature');
    assert.equal(there.cached, 49, 'and took the other 49 from its cache');
    // On the wire: 50 RES, one batch of 50, every leaf once, one signature, paths of at most 6 hashes (ceil(log2 50)).
    assert.equal(there.sent.length, 50);
    const proofs = there.sent.map((s) => s.m.proof!);
    assert.ok(proofs.every((p) => p.treeSize === 50));
    assert.deepEqual(proofs.map((p) => p.leafIndex).sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
    assert.equal(new Set(proofs.map((p) => p.signature.toString('hex'))).size, 1);
    assert.ok(proofs.every((p) => p.hostKey.equals(h2.identity.publicRaw) && p.path.length <= 6));
    assert.ok(there.sent.every((s) => s.bytes === 8 + 77 + 32 + 166 + 9 + 32 * s.m.proof!.path.length + 64));
    for (const l of links) l.write(10_000);
    await Promise.all(links.map((l) => l.settle('streams go on at h2')));

    // And back: one more signature, by h1 this time.
    const back = await move(h2, h1, tap1);
    assert.deepEqual([back.roots, back.leaves, back.verified, back.cached, back.sent.length], [1, 50, 1, 49, 50]);
    for (const l of links) await l.exchange(5_000, 'after the move back');
    for (const h of ['h0', 'h1', 'h2']) assert.equal(log.lines.filter((l) => l.level === 'warn' && l.fields['host'] === h).length, 0, `no warnings on ${h}`);
    for (const h of [h0, h1, h2]) assert.equal(h.refusals.size, 0, 'nothing refused');
  } finally {
    await net.close();
  }
});
