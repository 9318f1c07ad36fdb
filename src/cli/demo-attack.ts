/**
 * `ferry demo --attack`: an attacker inside the demo process that runs while the ring streams and
 * moves, written from docs/PROTOCOL.md with `node:dgram`, `node:net` and `node:crypto` and the
 * public Host API, never reaching into the hosts it attacks:
 *
 * - **strangers**: agents with fresh keys, on a host of the attacker's own, connect to ring agents,
 *   send 2 bytes and vanish (their host goes silent, then closes), wave after wave;
 * - **garbage datagrams** to every host's control port and to the rendezvous: random bytes, and
 *   well-formed headers of every type with random bodies;
 * - **garbage on the redirector ports**: random bytes, and length-prefixed frames of random type;
 * - **slowloris**: sockets to each redirector that send one byte and hold, reopened when closed.
 *
 * It counts what it sent and how each input was refused, as seen from outside: error replies by
 * code, REJECT frames by code, sockets the hosts closed, connections the agents closed. The demo's
 * verdict still requires every stream exact; the attack only adds its report.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
import type { DatagramSocketLike } from '../control/index.js';
import { Host } from '../host/index.js';
import { Identity, type AgentId } from '../identity/index.js';
import { RendezvousClient } from '../location/index.js';
import { errorFromWire, isFerryError, limit, setBounded } from '../util/index.js';
import { FrameDecoder, FrameType, LocationMessageType, TYPE_ERROR, decodeDatagram, decodeErrorBody, decodeFrameBody, decodeLookup, decodePathChallenge, decodeUnwatch, decodeWatch, encodeDatagram, lengthPrefix } from '../wire/index.js';

/** Where the attacker aims: "ip:port" addresses, and the agents it may reach. */
export interface AttackTargets {
  /** The rendezvous nodes (one, or several over one directory). */
  rendezvous: readonly string[];
  hosts: { control: string; redirector: string }[];
  /** The ring agents (strangers connect to these). */
  agents: readonly AgentId[];
  /** Whether the hosts run with security (the strangers' host matches, to get as far as the agents). */
  security: boolean;
}

/** How hard the attacker pushes (per second, over all targets). */
export interface AttackRates {
  /** Strangers per wave; one wave a second. */
  strangersPerWave: number;
  datagramsPerSecond: number;
  garbageSocketsPerSecond: number;
  /** Slowloris sockets held open against each redirector. */
  slowlorisPerHost: number;
}

/** Modest by default: the demo runs on a laptop next to the attacked hosts. */
export const DEFAULT_ATTACK_RATES: AttackRates = { strangersPerWave: 4, datagramsPerSecond: 200, garbageSocketsPerSecond: 10, slowlorisPerHost: 32 };

/**
 * How long a stranger waits for the agent to close its connection before it vanishes anyway. A
 * stranger whose connection is still open when the agent moves costs that move the suspend's
 * control timeout (its SUS is never answered, about 3 s): the move still commits, and the
 * connection ends on the destination after the reconnect limit (one `agent_connection_dropped`).
 */
const STRANGER_LINGER_MS = 2000;

/** What the attack sent and how it was refused (counts). */
export interface AttackReport {
  strangers: {
    /** Connections opened from fresh keys, each sending 2 bytes. */
    connected: number;
    /** Of those, closed by the agent before the stranger vanished (it waits up to 2 s for that). */
    closedByAgent: number;
    /** Opens refused, by error code. */
    refused: Record<string, number>;
    /** Stranger hosts that went silent and died (one per wave). */
    waves: number;
  };
  datagrams: {
    sent: number;
    bytes: number;
    /** Error replies, by code. */
    refused: Record<string, number>;
    /** Replies that were not errors to datagrams that were not, by chance, a valid request (none expected). */
    otherReplies: number;
    /** Random datagrams that happened to be a valid request anyone may make (a LOOKUP of a random id…), answered as such. */
    validByChance: number;
  };
  redirector: {
    /** Sockets that wrote garbage. */
    sockets: number;
    bytes: number;
    /** REJECT frames received, by code. */
    rejected: Record<string, number>;
    /** Sockets the host closed without a REJECT. */
    closed: number;
    /** Sockets still open when the attack stopped (a frame announced but not complete: the host waits, up to HELLO_TIMEOUT_MS). */
    waitingAtEnd: number;
    /** Sockets the host neither refused nor closed within HELLO_TIMEOUT_MS and a second (none expected). */
    neverClosed: number;
  };
  slowloris: {
    /** One-byte sockets opened (reopened when the host closed one). */
    opened: number;
    /** Closed by the hosts. */
    closedByHost: number;
    /** Still held when the attack stopped. */
    heldAtEnd: number;
  };
}

const count = (m: Record<string, number>, key: string): void => {
  m[key] = (m[key] ?? 0) + 1;
};

function split(addr: string): { ip: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { ip: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

/** A control socket that can be made to vanish: once silent, nothing leaves or arrives (a crashed host). */
class Silenceable implements DatagramSocketLike {
  silent = false;
  constructor(private readonly inner: DatagramSocketLike) {}
  send(buf: Buffer, port: number, address: string): void {
    if (!this.silent) this.inner.send(buf, port, address);
  }
  on(event: 'message', listener: (msg: Buffer, rinfo: { address: string; port: number }) => void): this {
    this.inner.on(event, (msg, rinfo) => {
      if (!this.silent) listener(msg, rinfo);
    });
    return this;
  }
  close(): void {
    this.inner.close();
  }
  address(): { address: string; port: number } {
    return this.inner.address();
  }
}

/** Well-formed datagrams remembered for {@link validByChance}. */
const SENT_REQUESTS_KEPT = 4096;

/** The requests anyone may make, with their decoders (see {@link validByChance}). */
const OPEN_REQUESTS = new Map<number, (body: Buffer) => unknown>([
  [LocationMessageType.LOOKUP, decodeLookup],
  [LocationMessageType.WATCH, decodeWatch],
  [LocationMessageType.UNWATCH, decodeUnwatch],
  [LocationMessageType.PATH_CHALLENGE, decodePathChallenge],
]);

/**
 * Whether a random datagram is, by chance, a valid request that anyone may make and that is
 * answered with more than an error: a LOOKUP of a random agent id (16 random bytes), a WATCH whose
 * padding came out empty, an UNWATCH, a PATH_CHALLENGE. Each needs the right type and length out
 * of about 254 x 300: each about once in 76,000 well-formed datagrams.
 */
function validByChance(sent: { type: number; body: Buffer } | undefined): boolean {
  const decode = sent && OPEN_REQUESTS.get(sent.type);
  if (!sent || !decode) return false;
  try {
    decode(sent.body);
    return true;
  } catch {
    return false;
  }
}

/** The running attack; {@link Attack.stop} ends it and returns the report. */
export class Attack {
  private readonly report: AttackReport = {
    strangers: { connected: 0, closedByAgent: 0, refused: {}, waves: 0 },
    datagrams: { sent: 0, bytes: 0, refused: {}, otherReplies: 0, validByChance: 0 },
    redirector: { sockets: 0, bytes: 0, rejected: {}, closed: 0, waitingAtEnd: 0, neverClosed: 0 },
    slowloris: { opened: 0, closedByHost: 0, heldAtEnd: 0 },
  };
  private running = true;
  private readonly held = new Set<Socket>();
  /** The well-formed datagrams sent, by request id (the newest SENT_REQUESTS_KEPT). */
  private readonly sentRequests = new Map<number, { type: number; body: Buffer }>();
  /** Garbage sockets still waiting for the host's answer. */
  private readonly garbage = new Set<Promise<void>>();
  private readonly stopped: Promise<void>;
  private stop_!: () => void;
  private readonly loops: Promise<void>[] = [];

  private constructor(
    private readonly t: AttackTargets,
    private readonly rates: AttackRates,
    private readonly udp: UdpSocket,
  ) {
    udp.on('message', (msg) => this.onReply(msg));
    this.stopped = new Promise((r) => (this.stop_ = r));
  }

  /** Start every part of the attack. */
  static async start(t: AttackTargets, rates: AttackRates = DEFAULT_ATTACK_RATES): Promise<Attack> {
    const udp = createSocket('udp4');
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');
    const a = new Attack(t, rates, udp);
    a.loops.push(a.every(1000 / Math.max(1, rates.datagramsPerSecond / 10), () => a.datagramBurst(10)));
    a.loops.push(
      a.every(1000 / Math.max(1, rates.garbageSocketsPerSecond), () => {
        // Not awaited: a socket the host keeps waiting must not slow the next ones.
        const p = a.garbageSocket().finally(() => a.garbage.delete(p));
        a.garbage.add(p);
      }),
    );
    a.loops.push(a.every(1000, () => a.strangerWave()));
    for (const h of t.hosts) for (let i = 0; i < rates.slowlorisPerHost; i++) a.slowloris(h.redirector);
    return a;
  }

  /** Stop, wait for what is in flight, and report. */
  async stop(): Promise<AttackReport> {
    this.running = false;
    this.stop_();
    await Promise.all(this.loops);
    await Promise.all(this.garbage);
    this.report.slowloris.heldAtEnd = [...this.held].filter((s) => !s.destroyed).length;
    for (const s of this.held) s.destroy();
    this.held.clear();
    // Late replies to the last datagrams still count.
    await new Promise((r) => setTimeout(r, 100));
    this.udp.close();
    return this.report;
  }

  /** Run `step` every `ms` until stopped; a step that fails is counted by the step itself. */
  private async every(ms: number, step: () => Promise<void> | void): Promise<void> {
    while (this.running) {
      await Promise.all([Promise.resolve().then(step).catch(() => {}), new Promise((r) => setTimeout(r, ms))]);
    }
  }

  // -------------------------------------------------------------- datagrams

  private datagramBurst(n: number): void {
    const targets = [...this.t.rendezvous, ...this.t.hosts.map((h) => h.control)];
    for (let i = 0; i < n; i++) {
      const to = split(targets[randomInt(targets.length)]!);
      // Half raw noise; half a well-formed header of any request type with a random body, which
      // gets past the header check to each message's own decoder.
      let msg: Buffer;
      if (i % 2 === 0) msg = randomBytes(randomInt(1, 1300));
      else {
        const type = randomInt(1, 255);
        const requestId = randomInt(2 ** 31);
        const body = randomBytes(randomInt(0, 300));
        msg = encodeDatagram({ type, flags: 0, requestId }, body);
        // Kept to tell a reply to a request that is valid by chance from one garbage got.
        setBounded(this.sentRequests, requestId, { type, body }, SENT_REQUESTS_KEPT);
      }
      this.report.datagrams.sent++;
      this.report.datagrams.bytes += msg.length;
      this.udp.send(msg, to.port, to.ip);
    }
  }

  private onReply(msg: Buffer): void {
    try {
      const { header, body } = decodeDatagram(msg);
      if (header.type === TYPE_ERROR) count(this.report.datagrams.refused, decodeErrorBody(body).code);
      else if (validByChance(this.sentRequests.get(header.requestId))) this.report.datagrams.validByChance++;
      else this.report.datagrams.otherReplies++;
    } catch {
      this.report.datagrams.otherReplies++;
    }
  }

  // -------------------------------------------------------------- redirector garbage

  private async garbageSocket(): Promise<void> {
    const h = this.t.hosts[randomInt(this.t.hosts.length)]!;
    const { ip, port } = split(h.redirector);
    const body = randomBytes(randomInt(1, 300));
    // Half noise; half a plausible frame (a sane length prefix, a random type, junk after it).
    const bytes = randomInt(2) === 0 ? randomBytes(randomInt(1, 400)) : Buffer.concat([lengthPrefix(body.length), body]);
    this.report.redirector.sockets++;
    this.report.redirector.bytes += bytes.length;
    const s = netConnect({ host: ip, port });
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {});
    s.write(bytes);
    // Every socket ends with a REJECT or a close within HELLO_TIMEOUT_MS (5 s); wait a second more.
    const end = await Promise.race([
      once(s, 'close').then(() => 'closed' as const),
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), limit('HELLO_TIMEOUT_MS') + 1000).unref()),
      this.stopped.then(() => 'stopped' as const),
    ]);
    s.destroy();
    const all = Buffer.concat(chunks);
    const dec = new FrameDecoder();
    dec.push(all);
    try {
      const f = all.length > 0 ? dec.next() : undefined;
      const frame = f ? decodeFrameBody(f) : undefined;
      if (frame?.type === FrameType.REJECT) return count(this.report.redirector.rejected, errorFromWire(frame.wireCode, frame.detail).code);
    } catch {
      // not a frame: counted below as a close
    }
    if (end === 'closed') this.report.redirector.closed++;
    else if (end === 'stopped') this.report.redirector.waitingAtEnd++;
    else this.report.redirector.neverClosed++;
  }

  // -------------------------------------------------------------- slowloris

  private slowloris(addr: string): void {
    if (!this.running) return;
    const { ip, port } = split(addr);
    const s = netConnect({ host: ip, port });
    this.report.slowloris.opened++;
    this.held.add(s);
    s.on('error', () => {});
    s.on('connect', () => s.write(randomBytes(1)));
    s.on('close', () => {
      this.held.delete(s);
      if (!this.running) return;
      this.report.slowloris.closedByHost++;
      // Keep the pressure on: another one-byte socket in its place, a little later.
      setTimeout(() => this.slowloris(addr), 200).unref();
    });
  }

  // -------------------------------------------------------------- strangers

  /**
   * One wave: a fresh host of the attacker's (its own key, registered with the rendezvous), a
   * few agents with fresh keys on it, each connecting to a ring agent and sending 2 bytes; after
   * a short look at what the agents did, the host goes silent and closes: the strangers vanish.
   */
  private async strangerWave(): Promise<void> {
    const identity = Identity.generate();
    const location = await RendezvousClient.connect({ server: this.t.rendezvous[0]!, alternates: this.t.rendezvous.slice(1), host: '127.0.0.1', signer: identity });
    let silencer: Silenceable | undefined;
    let host: Host | undefined;
    try {
      host = await Host.start({ location, identity, ip: '127.0.0.1', security: this.t.security, name: `stranger${this.report.strangers.waves}`, wrapControlSocket: (s) => (silencer = new Silenceable(s)) });
      this.report.strangers.waves++;
      const socks = await Promise.all(
        Array.from({ length: this.rates.strangersPerWave }, async () => {
          const me = await host!.addAgent();
          const to = this.t.agents[randomInt(this.t.agents.length)]!;
          try {
            const s = await host!.connect(me.id, to);
            this.report.strangers.connected++;
            s.on('error', () => {});
            s.write(Buffer.from([0x17, 0x03]));
            return s;
          } catch (err) {
            count(this.report.strangers.refused, isFerryError(err) ? err.code : 'other');
            return undefined;
          }
        }),
      );
      const closedOf = (s: (typeof socks)[number]): boolean => !!s && (s.destroyed || s.state === 'CLOSED');
      for (let waited = 0; waited < STRANGER_LINGER_MS && !socks.every((s) => !s || closedOf(s)); waited += 50) await new Promise((r) => setTimeout(r, 50));
      for (const s of socks) if (closedOf(s)) this.report.strangers.closedByAgent++;
    } finally {
      // Vanish: nothing more leaves this host, not even a CLS; then its ports close.
      if (silencer) silencer.silent = true;
      await host?.close().catch(() => {});
      location.close();
    }
  }
}

/** The report as lines for the human verdict. */
export function formatAttack(r: AttackReport & { closedByRingAgents?: number }): string[] {
  const codes = (m: Record<string, number>): string =>
    Object.entries(m)
      .sort((a, b) => b[1] - a[1])
      .map(([c, n]) => `${c.replace(/^FERRY_ERR_/, '')} ${n}`)
      .join(', ') || 'none';
  const sum = (m: Record<string, number>): number => Object.values(m).reduce((a, b) => a + b, 0);
  const d = r.datagrams;
  return [
    `  attack (while the ring streamed and moved):`,
    `    strangers: ${r.strangers.connected} connections from fresh keys in ${r.strangers.waves} waves, 2 bytes each, then vanished; ${r.strangers.closedByAgent} closed by the ring agents within 2 s; opens refused: ${codes(r.strangers.refused)}`,
    `    datagrams: ${d.sent} of garbage (${d.bytes} B) to the control ports and the rendezvous; ${sum(d.refused)} answered with an error (${codes(d.refused)}), ${d.sent - sum(d.refused) - d.otherReplies - d.validByChance} dropped unanswered, ${d.otherReplies} other replies (and ${d.validByChance} valid requests by chance, answered as such)`,
    `    redirectors: ${r.redirector.sockets} sockets of garbage (${r.redirector.bytes} B); ${sum(r.redirector.rejected)} refused with REJECT (${codes(r.redirector.rejected)}), ${r.redirector.closed} closed without one, ${r.redirector.waitingAtEnd} still waiting for the rest of a frame at the end, ${r.redirector.neverClosed} never closed`,
    ...('closedByRingAgents' in r ? [`    the ring agents closed ${String(r.closedByRingAgents)} connections they did not expect (their own count, carried in their state)`] : []),
    `    slowloris: ${r.slowloris.opened} one-byte sockets against the redirectors; ${r.slowloris.closedByHost} closed by the hosts, ${r.slowloris.heldAtEnd} held at the end`,
  ];
}
