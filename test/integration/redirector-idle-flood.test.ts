// Scenario: one address (127.0.0.2) holds 1,500 idle sockets on a host's redirector, each having
// sent one byte of a frame and nothing more, and opens a fresh one whenever the host drops one
// (at most once per HELLO_TIMEOUT_MS per socket, as a patient attacker would). That is more than
// MAX_PENDING_HANDOFFS. Meanwhile, from 127.0.0.1: an agent migrates to that host with a live
// connection that streams across the move, a new connection opens to an agent there, and a
// probe of the redirector is answered. The flooding address only ever holds its share
// (PENDING_HANDOFFS_PER_SOURCE), its idlest sockets give way, and each give-way is counted as
// FERRY_ERR_LIMIT_EXCEEDED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import type { AgentSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { limit } from '../../src/util/index.js';
import { FrameType, NONCE_BYTES, encodeFrame } from '../../src/wire/index.js';
import { Link, probeRedirector, sleep } from '../helpers/attacker.js';
import { startHosts, waitFor } from '../helpers/harness.js';

const ATTACKER_IP = '127.0.0.2';
const SOCKETS = 1500;

/** 1,500 sockets from ATTACKER_IP, each one byte in, each reopened when the host drops it. */
class IdleFlood {
  private readonly live = new Set<Socket>();
  opened = 0;
  private stopped = false;

  constructor(private readonly port: number) {}

  start(): void {
    for (let i = 0; i < SOCKETS; i++) void this.slot();
  }

  /** Sockets the attacker holds open right now. */
  get holding(): number {
    return this.live.size;
  }

  private async slot(): Promise<void> {
    while (!this.stopped) {
      const began = Date.now();
      const s = netConnect({ host: '127.0.0.1', port: this.port, localAddress: ATTACKER_IP });
      s.on('error', () => {});
      // (not events.once: it rejects on the 'error' a reset socket emits before 'close')
      const closed = new Promise((resolve) => s.once('close', resolve));
      s.once('connect', () => {
        this.opened++;
        this.live.add(s);
        s.write(Buffer.from([0])); // the first byte of a 4-byte length prefix, then silence
      });
      await closed;
      this.live.delete(s);
      // Reopen no sooner than a HELLO timeout after the last open: a held socket, refreshed.
      const wait = limit('HELLO_TIMEOUT_MS') - (Date.now() - began);
      if (wait > 0 && !this.stopped) await new Promise((r) => setTimeout(r, wait).unref());
    }
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.live) s.destroy();
  }
}

test('1,500 idle sockets from one address do not stop a migration to the host, a new open, or a probe', async () => {
  const net = await startHosts(3);
  const [h0, h1, h2] = net.hosts as [Host, Host, Host];
  const flood = new IdleFlood(h1.redirectorPort);
  try {
    // A connection from x (on h0, about to move to the flooded h1) to y on h2, streaming.
    const x = await h0.addAgent();
    const y = await h2.addAgent();
    const link = await Link.open(h0, x.id, h2, y.id, 41);
    await link.exchange(50_000, 'before the flood');
    const z = await h1.addAgent();
    const server = h1.listen(z.id);

    flood.start();
    // Every attacker socket got in once; more than the whole table is now held or churning.
    // (The attacker's 'connect' comes from the kernel, before the host accepts: wait for the host.)
    await waitFor(() => flood.opened >= SOCKETS, 20_000, `${SOCKETS} attacker sockets opened`);
    // More sockets than the whole table: at least the excess was turned away or gave way.
    const turnedAway = (): number => h1.refusals.get('FERRY_ERR_LIMIT_EXCEEDED') ?? 0;
    await waitFor(() => turnedAway() >= SOCKETS - limit('MAX_PENDING_HANDOFFS'), 20_000, 'the redirector full');

    // A probe from another address is answered (a HELLO for no connection: REJECT).
    const hello = encodeFrame({ type: FrameType.HELLO, kind: 'open', connectionId: Buffer.alloc(16, 7), dialerRole: 'client', dialerNonce: Buffer.alloc(NONCE_BYTES), challenge: Buffer.alloc(NONCE_BYTES), received: 0, limit: 1 << 20, mac: Buffer.alloc(32) });
    const probe = await probeRedirector(h1.redirectorPort, hello);
    assert.equal(probe.error?.code, 'FERRY_ERR_UNKNOWN_CONNECTION', 'a probe from 127.0.0.1 is answered while the flood holds');

    // The migration to the flooded host commits, and the connection streams across it.
    link.write(100_000);
    await h0.migrateAgent(x.id, { ip: h1.ip, redirectorPort: h1.redirectorPort, hostId: h1.id });
    assert.deepEqual(h1.agentIds().includes(x.id), true, 'x lives on the flooded host');
    link.follow('a', h1.socketsOf(x.id)[0]!);
    await link.exchange(100_000, 'after the move under the flood', 15_000);

    // A new connection opens to an agent on the flooded host and carries bytes both ways.
    const accepted = server.accept();
    const w = await h2.addAgent();
    const opened: AgentSocket = await h2.connect(w.id, z.id);
    const fresh = new Link(opened, await accepted, 77);
    await fresh.exchange(20_000, 'a new open under the flood');
    assert.ok(flood.holding > 0, 'the flood was still on during the move and the open');
    // The flooding address gave up its idlest sockets beyond its share, and holds no more.
    assert.ok(turnedAway() >= SOCKETS - limit('PENDING_HANDOFFS_PER_SOURCE'), `evictions beyond the share (${turnedAway()})`);
    await waitFor(() => flood.holding <= limit('PENDING_HANDOFFS_PER_SOURCE'), 10_000, `the attacker holding at most its share (holds ${flood.holding})`);
  } finally {
    flood.stop();
    await net.close();
  }
});
