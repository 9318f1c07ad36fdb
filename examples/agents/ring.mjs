// A ring member. Agent i of ctx.state.ring connects to agent i+1 and accepts a connection from
// agent i-1; on each of its two connections it streams ctx.state.total bytes and reads the peer's
// ctx.state.total bytes, both ways at once. Every byte is a function of (writer, reader, offset),
// so the reader checks each byte against what the writer must have sent at that offset; both
// sides also keep a CRC-32 of the stream, so the two ends' checksums can be compared afterwards.
//
// Everything that counts lives in ctx.state and is updated in the same synchronous step as the
// write() or 'data' it describes, so it moves with the agent: after a move, run(ctx) starts again
// with ctx.connections and each stream goes on from the offsets the state holds. `ferry demo`
// moves these agents while they stream; run() resolves with every link's figures.
//
// Connections it does not expect (from an agent outside the ring, or a second one from a ring
// neighbour) are closed at once and counted in ctx.state.strangers: anyone may connect to a
// listening agent, and a stranger must not disturb the ring's streams.
//
// state: { ring: [agentId…], index, total, chunk, bytesPerSecond (0: unpaced) }
import { defineAgent, errorCode } from 'ferry/agent';

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 (IEEE) of `bytes`, continuing from `crc` (0 to start). */
function crc32(bytes, crc) {
  let c = ~crc;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** The byte a writer puts at `offset` of the stream `seed` (a 32-bit mix of seed and offset). */
function byteAt(seed, offset) {
  let h = Math.imul(offset ^ seed, 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca77);
  return (h ^ (h >>> 13)) & 0xff;
}

function fill(seed, offset, length) {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = byteAt(seed, offset + i);
  return b;
}

/** The stream from ring member `from` to ring member `to` (both sides compute the same seed). */
const seedOf = (from, to) => Math.imul(from + 1, 0x01000193) ^ Math.imul(to + 1, 0x2545f491);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Connect to `peer`, waiting while it is not yet listening, not yet registered, or between hosts. */
async function connectWhenReady(ctx, peer) {
  const retry = ['FERRY_ERR_NOT_LISTENING', 'FERRY_ERR_UNKNOWN_AGENT', 'FERRY_ERR_PEER_MOVING'];
  for (let i = 0; ; i++) {
    try {
      return await ctx.connect(peer);
    } catch (err) {
      if (!retry.includes(errorCode(err)) || i > 400) throw err;
      await sleep(25);
    }
  }
}

export default defineAgent({
  async run(ctx) {
    const s = ctx.state;
    s.runs = (s.runs ?? 0) + 1;
    s.links ??= {};
    s.strangers ??= 0;
    const n = s.ring.length;
    const next = s.ring[(s.index + 1) % n];
    const prev = s.ring[(s.index - 1 + n) % n];
    const indexOf = (id) => s.ring.indexOf(id);
    const started = performance.now();
    const sentAtStart = () => Object.values(s.links).reduce((a, l) => a + l.sent, 0);
    const base = sentAtStart();

    const link = (sock, dir) => {
      const l = (s.links[sock.connectionId] ??= {
        dir,
        peer: sock.remoteAgent,
        sent: 0,
        sentCrc: 0,
        wroteEnd: false,
        recv: 0,
        recvCrc: 0,
        mismatches: 0,
        firstMismatch: -1,
        ended: false,
      });
      return l;
    };

    const hasLink = (dir) => Object.values(s.links).some((l) => l.dir === dir);
    const refuse = (sock) => {
      s.strangers++;
      sock.destroy();
    };

    // Links: the connections that came along, then whatever is still missing.
    const socks = new Map();
    for (const sock of ctx.connections) {
      if (!s.links[sock.connectionId]) {
        // A connection not in the state yet (opened just before a move) is labelled by who opened
        // it: we dial the next member. Anything else is not one of our two links.
        const dir = sock.initiator ? 'out' : 'in';
        if (sock.remoteAgent !== (dir === 'out' ? next : prev) || hasLink(dir)) {
          refuse(sock);
          continue;
        }
        link(sock, dir);
      }
      socks.set(sock.connectionId, sock);
    }
    const server = await ctx.listen();
    if (!hasLink('out')) {
      const sock = await connectWhenReady(ctx, next);
      link(sock, 'out');
      socks.set(sock.connectionId, sock);
    }
    if (!hasLink('in')) {
      for (;;) {
        const sock = await server.accept();
        if (sock.remoteAgent !== prev) {
          refuse(sock);
          continue;
        }
        link(sock, 'in');
        socks.set(sock.connectionId, sock);
        break;
      }
    }
    // From now on every connection is unexpected: close each as it comes, for as long as we run.
    void (async () => {
      for await (const sock of server) refuse(sock);
    })();
    ctx.log(`ring member ${s.index} run=${s.runs} links=${socks.size} sent=${sentAtStart()}`);

    // Sleep while this run is ahead of bytesPerSecond per link (a 50 ms nap at most, then look again).
    const pace = async () => {
      if (!s.bytesPerSecond) return;
      for (;;) {
        const ahead = sentAtStart() - base - (s.bytesPerSecond * 2 * (performance.now() - started)) / 1000;
        if (ahead <= 0) return;
        await sleep(Math.min(50, (ahead / (s.bytesPerSecond * 2)) * 1000));
      }
    };

    const stream = (id, sock) =>
      new Promise((resolve, reject) => {
        const l = s.links[id];
        const peerIndex = indexOf(l.peer);
        const inSeed = seedOf(peerIndex, s.index);
        const outSeed = seedOf(s.index, peerIndex);
        let wrote = l.wroteEnd;
        let read = l.ended;
        const settle = () => wrote && read && resolve();
        sock.on('error', (err) => reject(new Error(`ring member ${s.index}: link to ${peerIndex}: ${errorCode(err) ?? err.message}`)));
        sock.on('data', (c) => {
          for (let i = 0; i < c.length; i++) {
            if (c[i] !== byteAt(inSeed, l.recv + i)) {
              if (l.firstMismatch < 0) l.firstMismatch = l.recv + i;
              l.mismatches++;
            }
          }
          l.recvCrc = crc32(c, l.recvCrc);
          l.recv += c.length;
        });
        sock.on('end', () => {
          l.ended = true;
          read = true;
          settle();
        });
        if (read) sock.resume();
        void (async () => {
          while (l.sent < s.total) {
            const chunk = fill(outSeed, l.sent, Math.min(s.chunk, s.total - l.sent));
            l.sentCrc = crc32(chunk, l.sentCrc);
            l.sent += chunk.length;
            const ok = sock.write(chunk);
            if (!ok) await new Promise((r) => sock.once('drain', r));
            await pace();
          }
          if (!l.wroteEnd) {
            l.wroteEnd = true;
            sock.end();
          }
          wrote = true;
          settle();
        })().catch(reject);
      });

    await Promise.all([...socks].map(([id, sock]) => stream(id, sock)));
    ctx.log(`ring member ${s.index} done runs=${s.runs}`);
    return { index: s.index, id: ctx.id, runs: s.runs, links: s.links, strangers: s.strangers };
  },
});
