// Scenario: endpoints move between hosts while both sides stream — one end alone, both ends at
// the same moment, and a ring X->Y->Z->X where every agent moves at once. Every byte arrives
// exactly once and in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import type { AgentId } from '../../src/identity/index.js';
import { pattern, Reader, startHosts, waitFor } from '../helpers/harness.js';

/** One direction of a link: a writer that follows the socket across moves. */
class Writer {
  offset = 0;
  constructor(private readonly seed: number) {}
  write(sock: AgentSocket, n: number): void {
    sock.write(pattern(this.seed, this.offset, n));
    this.offset += n;
  }
}

async function link(from: Host, fromId: AgentId, to: Host, toId: AgentId): Promise<[AgentSocket, AgentSocket]> {
  const server = to.listen(toId);
  const acc = server.accept();
  const c = await from.connect(fromId, toId);
  return [c, await acc];
}

test('one end moves, then both ends move at once, while streaming', async () => {
  const net = await startHosts(3);
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    let [sa, sb] = await link(h0, a.id, h1, b.id);
    const ra = new Reader();
    const rb = new Reader();
    ra.attach(sa);
    rb.attach(sb);
    const wa = new Writer(1);
    const wb = new Writer(2);
    wa.write(sa, 200_000);
    wb.write(sb, 150_000);
    // a moves alone h0 -> h2 with bytes in flight.
    [sa] = (await h0.moveAgent(a.id, h2)).sockets as [AgentSocket];
    ra.attach(sa);
    wa.write(sa, 50_000);
    wb.write(sb, 50_000);
    await waitFor(() => rb.length === wa.offset && ra.length === wb.offset, 10_000, 'after single move');
    // both move at once: a h2 -> h0, b h1 -> h2.
    wa.write(sa, 100_000);
    wb.write(sb, 100_000);
    const [ma, mb] = await Promise.all([h2.moveAgent(a.id, h0), h1.moveAgent(b.id, h2)]);
    sa = ma.sockets[0]!;
    sb = mb.sockets[0]!;
    ra.attach(sa);
    rb.attach(sb);
    wa.write(sa, 30_000);
    wb.write(sb, 30_000);
    await waitFor(() => rb.length === wa.offset && ra.length === wb.offset, 15_000, 'after simultaneous move');
    assert.ok(rb.bytes().equals(pattern(1, 0, wa.offset)), 'a -> b stream intact');
    assert.ok(ra.bytes().equals(pattern(2, 0, wb.offset)), 'b -> a stream intact');
    assert.equal(sa.state, 'ESTABLISHED');
  } finally {
    await net.close();
  }
});

test('a ring X->Y->Z->X of three agents all move at once', async () => {
  const net = await startHosts(3);
  try {
    const hosts = net.hosts as [Host, Host, Host];
    const ids = [await hosts[0].addAgent(), await hosts[1].addAgent(), await hosts[2].addAgent()];
    // agent i is the client of agent i+1: each agent has one client and one server socket.
    const out: AgentSocket[] = [];
    const inn: AgentSocket[] = [];
    for (let i = 0; i < 3; i++) hosts[i]!.listen(ids[i]!.id);
    for (let i = 0; i < 3; i++) {
      const j = (i + 1) % 3;
      const srv = hosts[j]!;
      const acc = (srv as unknown as { agents: Map<string, { server: { accept(): Promise<AgentSocket> } }> }).agents.get(ids[j]!.id)!.server.accept();
      out[i] = await hosts[i]!.connect(ids[i]!.id, ids[j]!.id);
      inn[j] = await acc;
    }
    const readers = [0, 1, 2].map(() => new Reader());
    const writers = [0, 1, 2].map((i) => new Writer(10 + i));
    for (let i = 0; i < 3; i++) readers[(i + 1) % 3]!.attach(inn[(i + 1) % 3]!);
    for (let i = 0; i < 3; i++) writers[i]!.write(out[i]!, 120_000);
    // everyone moves one host to the right, at the same moment.
    const moved = await Promise.all([0, 1, 2].map((i) => hosts[i]!.moveAgent(ids[i]!.id, hosts[(i + 1) % 3]!)));
    for (let i = 0; i < 3; i++) {
      const socks = moved[i]!.sockets;
      for (const s of socks) {
        if (s.remoteAgent === ids[(i + 1) % 3]!.id && s.endpoint.role === 'client') out[i] = s;
        else {
          inn[i] = s;
          readers[i]!.attach(s);
        }
      }
    }
    for (let i = 0; i < 3; i++) writers[i]!.write(out[i]!, 40_000);
    await waitFor(() => [0, 1, 2].every((i) => readers[(i + 1) % 3]!.length === writers[i]!.offset), 20_000, 'ring streams');
    for (let i = 0; i < 3; i++) assert.ok(readers[(i + 1) % 3]!.bytes().equals(pattern(10 + i, 0, writers[i]!.offset)), `link ${i} intact`);
  } finally {
    await net.close();
  }
});
