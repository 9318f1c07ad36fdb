// Scenario: an on-path attacker splices the source address of a genuine, proof-carrying RES
// (PROTOCOL.md §4.4, §8.4). After b moves from h1 to h2, h2's RES to a's host carries the location
// proof. The attacker holds every copy of it and sends the same bytes first from its own address
// (127.0.0.9), standing in for any address it chooses. The proof is bound to the message, not to
// the source, so a verifies it and takes that address only as a candidate: what goes there is
// within AMPLIFICATION_FACTOR times what came from there, a dial there (a TCP listener on that
// address at h2's redirector port) completes no resume, and the genuine copies, once released,
// are refused as replays from another address. b's next RES (a fresh counter, still proving)
// resumes the connection from h2 and every byte arrives once. Nothing of the splice lasts: a
// plain RES from h2 afterwards (no proof) is accepted, because the last verified proof came from
// h2, and the stream goes on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import type { DatagramSocketLike } from '../../src/control/index.js';
import type { Host } from '../../src/host/index.js';
import { limit, MemoryLogger } from '../../src/util/index.js';
import { MessageType } from '../../src/wire/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';
import { Attacker, Link, warnings } from '../helpers/attacker.js';

/** A control socket that can hold back what it would send (an on-path attacker's drop). */
class Holding implements DatagramSocketLike {
  hold: ((msg: Buffer, to: string) => boolean) | undefined;
  readonly held: Buffer[] = [];
  constructor(private readonly inner: DatagramSocketLike) {}
  send(buf: Buffer, port: number, address: string): void {
    if (this.hold?.(buf, `${address}:${port}`)) {
      this.held.push(Buffer.from(buf));
      return;
    }
    this.inner.send(buf, port, address);
  }
  on(event: 'message', listener: (msg: Buffer, rinfo: { address: string; port: number }) => void): this {
    this.inner.on(event, listener);
    return this;
  }
  close(): void {
    this.inner.close();
  }
  address(): { address: string; port: number } {
    return this.inner.address();
  }
}

test('a proven RES spliced onto another source moves nothing for good; the genuine peer resumes', { timeout: 60_000 }, async () => {
  const log = new MemoryLogger();
  const sockets: Holding[] = [];
  const net = await startHosts(3, { logger: log, wrapControlSocket: (s) => (sockets.push(new Holding(s)), sockets.at(-1)!) });
  const attacker = await Attacker.bind('127.0.0.9');
  const dialed: Socket[] = [];
  const trap = createServer((s) => dialed.push(s));
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    // Where a dial of the spliced candidate goes: the attacker's IP at h2's redirector port.
    trap.listen(h2.redirectorPort, '127.0.0.9');
    await once(trap, 'listening');
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 120);
    await link.exchange(20_000, 'before');

    // Every RES h2 sends to h0 is held until the attacker has used the first.
    const out2 = sockets[2]!;
    out2.hold = (msg, to) => msg[1] === MessageType.RES && msg[2] === 0 && to === h0.controlAddress;
    link.write(10_000); // a's bytes wait in its buffer across the move
    const moved = await h1.moveAgent(b.id, h2);
    await waitFor(() => out2.held.length >= 1, 5000, 'h2 sent its RES');
    const spliced = out2.held[0]!;
    assert.ok(spliced.length >= 356, 'the RES carries a location proof');

    const reply = await attacker.sendRaw(h0.controlAddress, spliced);
    assert.equal(reply.type, MessageType.RES_ACK, 'the proof verifies from any source: the RES is answered');
    out2.hold = undefined;
    for (const m of out2.held.splice(0)) out2.send(m, Number(h0.controlAddress.split(':')[1]), h0.ip);

    // The genuine peer resumes from h2, and the stream is exact.
    link.follow('b', moved.sockets[0]!);
    await waitFor(() => link.a.state === 'ESTABLISHED' && link.b.state === 'ESTABLISHED', 10_000, 'resumed from h2');
    await link.settle('after the move');
    assert.ok(warnings(log, 'h0', 'FERRY_ERR_REPLAYED_CONTROL') >= 1, 'the genuine copies were refused as replays from elsewhere');

    // What the spliced address got: within the amplification bound, and no resume through it.
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(attacker.bytesIn <= limit('AMPLIFICATION_FACTOR') * attacker.bytesOut, `${attacker.bytesIn} bytes sent to the spliced source for ${attacker.bytesOut}`);
    assert.ok(dialed.length <= 1, `${dialed.length} dials to the spliced address`);

    // Nothing of it lasts: a plain RES datagram from h2 (no proof: b proved itself and was
    // acknowledged) is accepted, and the stream goes on.
    await link.b.endpoint.suspend('move');
    link.write(10_000);
    await link.b.resumeConnection();
    await link.exchange(10_000, 'after a plain cycle from h2');
    assert.equal(warnings(log, 'h0', 'FERRY_ERR_RESUME_UNPROVEN'), 0, 'no RES from h2 was refused unproven');
  } finally {
    for (const s of dialed) s.destroy();
    trap.close();
    attacker.close();
    await net.close();
  }
});
