/**
 * `breakdown`: where a secure open spends its time (the paper's Fig. 4), each part measured on
 * its own with the real primitives and codecs, then set against a measured secure open:
 *
 * - key agreement: two ephemeral X25519 key pairs and two agreements (one per side), as Ferry's
 *   `generateEphemeral` / `x25519` do them, and apart from that X25519 on ready KeyObjects (the
 *   difference is moving raw 32-byte keys in and out of node:crypto);
 * - signatures: two Ed25519 signatures and two verifications, with the id-is-hash-of-key check
 *   (delegation chains come with issue 3; there are none to verify yet);
 * - key schedule and MACs: the transcript hash and the two HKDF calls per side (master, then
 *   every connection key and the open socket's session keys in one expand), the two key
 *   confirmation MACs;
 * - data socket: the in-band open's wire: TCP connect to a redirector-like listener, a
 *   CONNECT-sized first frame out, a CONNECT_ACK-sized frame back, with the real frame codec;
 * - control round trip: one CONNECT / CONNECT_ACK-sized request and reply over a
 *   `ControlChannel` on UDP loopback. The in-band open does not use it (it is what the
 *   control-channel open, `inbandOpen: false`, pays instead); reported, but not in the sum.
 *
 * The remainder ("other") is the secure open's p50 minus the parts' p50s: event-loop turns, the
 * state machine, allocation, the sockets' and streams' objects.
 */
import { createHash, diffieHellman, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, connect as netConnect } from 'node:net';
import type { BenchContext } from '../lib/context.js';
import { iterations } from '../lib/context.js';
import { gc, summarize, type Row, type SuiteResult } from '../lib/stats.js';
import { ferryPair, sink } from '../lib/systems.js';
import { ControlChannel } from '../../src/control/index.js';
import { Identity, deriveOpenKeys, generateEphemeral, hmac, idOfPublicKey, verifySignature, x25519 } from '../../src/identity/index.js';
import { FrameDecoder, lengthPrefix } from '../../src/wire/index.js';

/** Time `fn` (sync) warm-up + n times, in ms. */
function timeSync(ctx: BenchContext, label: string, fn: () => void): number[] {
  const { warmup, n } = iterations(ctx);
  const out: number[] = [];
  gc();
  for (let i = 0; i < warmup + n; i++) {
    const t0 = performance.now();
    fn();
    if (i >= warmup) out.push(performance.now() - t0);
  }
  ctx.progress(`breakdown: ${label}`, true);
  return out;
}

/** Time `fn` (async) warm-up + n times, in ms. */
async function timeAsync(ctx: BenchContext, label: string, fn: () => Promise<void>): Promise<number[]> {
  const { warmup, n } = iterations(ctx);
  const out: number[] = [];
  gc();
  for (let i = 0; i < warmup + n; i++) {
    const t0 = performance.now();
    await fn();
    if (i >= warmup) out.push(performance.now() - t0);
    ctx.progress(`breakdown: ${label} ${Math.max(0, i + 1 - warmup)}/${n}`);
  }
  return out;
}

/** Run the suite. */
export async function runBreakdown(ctx: BenchContext): Promise<SuiteResult> {
  const client = Identity.generate();
  const server = Identity.generate();
  // A CONNECT is about 220 bytes of signed fields; a CONNECT_ACK head about 130.
  const connectFields = randomBytes(220);
  const ackHead = randomBytes(130);

  const keyAgreement = timeSync(ctx, 'key agreement', () => {
    const c = generateEphemeral();
    const s = generateEphemeral();
    x25519(s.privateKey, c.publicRaw);
    x25519(c.privateKey, s.publicRaw);
  });

  // The same agreement with keys already in KeyObject form: what X25519 itself costs, apart
  // from moving raw 32-byte keys in and out of node:crypto (as JWK).
  const peerKeys = [generateKeyPairSync('x25519'), generateKeyPairSync('x25519')];
  const arithmetic = timeSync(ctx, 'x25519 arithmetic', () => {
    const c = generateKeyPairSync('x25519');
    const s = generateKeyPairSync('x25519');
    diffieHellman({ privateKey: s.privateKey, publicKey: peerKeys[0]!.publicKey });
    diffieHellman({ privateKey: c.privateKey, publicKey: peerKeys[1]!.publicKey });
  });

  const signatures = timeSync(ctx, 'signatures', () => {
    const sigC = client.sign(connectFields);
    if (idOfPublicKey(client.publicRaw) !== client.id || !verifySignature(client.publicRaw, connectFields, sigC)) throw new Error('client signature');
    const sigS = server.sign(ackHead);
    if (idOfPublicKey(server.publicRaw) !== server.id || !verifySignature(server.publicRaw, ackHead, sigS)) throw new Error('server signature');
  });

  const shared = randomBytes(32);
  const cid = randomBytes(16);
  const keySchedule = timeSync(ctx, 'key schedule', () => {
    for (let side = 0; side < 2; side++) {
      const th = createHash('sha256').update(connectFields).update(ackHead).digest();
      const { keys: k } = deriveOpenKeys(shared, cid, th);
      hmac(k.confirmServer, th);
      hmac(k.confirmClient, th);
    }
  });

  // Control round trip: the real channel on UDP loopback, CONNECT-sized both ways.
  const a = await ControlChannel.bind({ host: '127.0.0.1' });
  const b = await ControlChannel.bind({ host: '127.0.0.1' });
  const reply = randomBytes(260);
  b.onRequest(() => ({ type: 2, body: reply }));
  const req = randomBytes(330);
  let control: number[];
  try {
    control = await timeAsync(ctx, 'control round trip', async () => {
      await a.request(b.address, 1, req);
    });
  } finally {
    a.close();
    b.close();
  }

  // Data socket: the in-band open's wire, TCP connect + a CONNECT-sized first frame out and a
  // CONNECT_ACK-sized frame back (183- and 182-byte bodies, secure), through the frame codec.
  const connectFrame = randomBytes(183);
  const ackFrame = Buffer.concat([lengthPrefix(182), randomBytes(182)]);
  const redirector = createServer({ noDelay: true }, (s) => {
    s.on('error', () => {});
    const d = new FrameDecoder();
    s.on('data', (c: Buffer) => {
      d.push(c);
      if (d.next()) s.write(ackFrame);
    });
  });
  await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
  const port = (redirector.address() as { port: number }).port;
  const hello = Buffer.concat([lengthPrefix(connectFrame.length), connectFrame]);
  let dataSocket: number[];
  try {
    dataSocket = await timeAsync(ctx, 'data socket', async () => {
      const s = netConnect({ host: '127.0.0.1', port, noDelay: true });
      s.write(hello);
      const d = new FrameDecoder();
      await new Promise<void>((resolve, reject) => {
        s.on('data', (c: Buffer) => {
          d.push(c);
          if (d.next()) resolve();
        });
        s.once('error', reject);
      });
      s.destroy();
    });
  } finally {
    await new Promise<void>((r) => redirector.close(() => r()));
  }

  // The whole thing, measured here too so the parts and the total come from the same minute.
  const totals: Record<string, number[]> = {};
  for (const security of [true, false]) {
    const p = await ferryPair(security);
    p.server.on('connection', (s) => sink(s));
    try {
      const { warmup, n } = iterations(ctx);
      const xs: number[] = [];
      gc();
      for (let i = 0; i < warmup + n; i++) {
        const t0 = performance.now();
        const sock = sink(await p.hosts[0]!.connect(p.a.id, p.b.id));
        if (i >= warmup) xs.push(performance.now() - t0);
        await sock.close();
        ctx.progress(`breakdown: ferry ${security ? 'secure' : 'plain'} open ${Math.max(0, i + 1 - warmup)}/${n}`);
      }
      totals[security ? 'secure' : 'plain'] = xs;
    } finally {
      await p.close();
    }
  }

  const parts: [string, string, number[]][] = [
    ['key-agreement', 'key agreement: 2 X25519 key pairs + 2 agreements', keyAgreement],
    ['signatures', 'signatures: 2 Ed25519 signs + 2 verifies, id checks', signatures],
    ['key-schedule', 'key schedule and MACs: transcript hash, 2 HKDF calls per side, key confirmation MACs', keySchedule],
    ['data-socket', 'data socket: TCP connect + CONNECT frame out, CONNECT_ACK frame back (the in-band open)', dataSocket],
  ];
  const rows: Row[] = parts.map(([id, what, xs]) => ({ id: `breakdown/${id}`, system: 'ferry-secure', what, unit: 'ms', summary: summarize(xs) }));
  rows.push({ id: 'breakdown/control-rtt', system: 'ferry-secure', what: 'control round trip: UDP request/reply (ControlChannel); not part of the in-band open (not in the sum)', unit: 'ms', summary: summarize(control) });
  const ka = rows[0]!.summary!.p50;
  const ar = summarize(arithmetic);
  rows.push({ id: 'breakdown/x25519-arithmetic', system: 'ferry-secure', what: 'of which X25519 itself: 2 key pairs + 2 agreements on KeyObjects (the rest of key agreement is moving raw keys in and out of KeyObjects)', unit: 'ms', summary: ar, note: `raw-key encoding ≈ ${Math.round((ka - ar.p50) * 1000) / 1000} ms of the ${ka} ms` });
  const secure = summarize(totals.secure!);
  const plain = summarize(totals.plain!);
  rows.push({ id: 'breakdown/total-secure', system: 'ferry-secure', what: 'secure open, measured (host.connect)', unit: 'ms', summary: secure });
  rows.push({ id: 'breakdown/total-plain', system: 'ferry-plain', what: 'plain open, measured (host.connect)', unit: 'ms', summary: plain });
  const sum = rows.filter((r) => parts.some(([id]) => r.id === `breakdown/${id}`)).reduce((s, r) => s + r.summary!.p50, 0);
  rows.push({ id: 'breakdown/other', system: 'ferry-secure', what: 'other: secure open p50 minus the parts (event loop, state machine; negative = overlap)', unit: 'ms', value: Math.round((secure.p50 - sum) * 1000) / 1000 });
  return { rows };
}
