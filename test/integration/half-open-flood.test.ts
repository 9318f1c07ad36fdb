// Scenario: one address (127.0.0.2) sends 1,100 valid in-band CONNECTs, each from a fresh key on
// a socket of its own, and never confirms one: more than the whole half-open table
// (MAX_HALF_OPEN). The frames are signed beforehand, so the burst costs the host, not the test. While they are held, an honest agent on another host (127.0.0.1) opens a
// connection to the same agent and streams both ways. The flooding address only ever holds its
// share of half-opens (HALF_OPEN_PER_SOURCE): each CONNECT beyond it drops that address's oldest
// half-open, counted as FERRY_ERR_LIMIT_EXCEEDED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { buildConnect, type AgentSocket } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { limit } from '../../src/util/index.js';
import { lengthPrefix } from '../../src/wire/index.js';
import { Link } from '../helpers/attacker.js';
import { startHosts, waitFor } from '../helpers/harness.js';

const ATTACKER_IP = '127.0.0.2';
const CONNECTS = 1100;

let answered = 0;
const live = new Set<Socket>();

/** A genuine in-band CONNECT frame from a fresh key. */
function connectFrame(to: AgentId): Buffer {
  const hello = buildConnect({ secure: true, clientHalf: randomBytes(8), client: Identity.generate(), toAgent: to, redirectorPort: 9, window: 65536, inbandControlPort: 9 });
  return Buffer.concat([lengthPrefix(hello.body.length), hello.body]);
}

/** A socket from ATTACKER_IP carrying one CONNECT frame, never confirmed. */
function openUnconfirmed(port: number, frame: Buffer): Socket {
  const s = netConnect({ host: '127.0.0.1', port, localAddress: ATTACKER_IP });
  s.on('error', () => {});
  let heard = false;
  const hear = (): void => {
    if (!heard) answered++;
    heard = true;
  };
  s.on('data', hear); // CONNECT_ACK (or REJECT) comes back; the attacker never answers it
  s.on('close', hear);
  s.on('close', () => live.delete(s));
  s.once('connect', () => s.write(frame));
  live.add(s);
  return s;
}

test('1,100 valid CONNECTs from one address, never confirmed, do not lock an honest open out', async () => {
  const net = await startHosts(2);
  const [h0, h1] = net.hosts as [Host, Host];
  try {
    const b = await h1.addAgent();
    const server = h1.listen(b.id);
    const accepted: AgentSocket[] = [];
    server.on('connection', (s: AgentSocket) => accepted.push(s));
    const frames = Array.from({ length: CONNECTS }, () => connectFrame(b.id));
    for (const f of frames) openUnconfirmed(h1.redirectorPort, f);
    // Every CONNECT answered (verified, so one CPU-costly step each: see PROTOCOL.md §10).
    await waitFor(() => answered >= CONNECTS, 60_000, "every CONNECT answered");

    // An honest open from 127.0.0.1 at once, while the attacker's half-opens are held (they
    // expire after HANDSHAKE_TIMEOUT_MS).
    const a = await h0.addAgent();
    const holding = live.size;
    const sock = await h0.connect(a.id, b.id);
    await waitFor(() => accepted.length === 1, 5000, 'the honest connection accepted');
    await new Link(sock, accepted[0]!, 31).exchange(50_000, 'an honest open under the half-open flood');

    const turnedAway = (): number => h1.refusals.get('FERRY_ERR_LIMIT_EXCEEDED') ?? 0;
    const halfOpen = (h1 as unknown as { halfOpen: { held(source: string): number } }).halfOpen;
    assert.ok(halfOpen.held(ATTACKER_IP) <= limit('HALF_OPEN_PER_SOURCE'), `the flooding address holds ${halfOpen.held(ATTACKER_IP)} half-opens`);
    await waitFor(() => turnedAway() >= CONNECTS - limit('HALF_OPEN_PER_SOURCE'), 10_000, `its half-opens beyond its share dropped (${turnedAway()})`);
    assert.equal(accepted.length, 1, 'no unconfirmed open reached the agent');
    assert.ok(holding >= limit('HALF_OPEN_PER_SOURCE'), `the flood was on during the open (${holding} sockets)`);
  } finally {
    for (const s of live) s.destroy();
    await net.close();
  }
});
