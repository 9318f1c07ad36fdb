/**
 * An in-memory datagram network: sockets that deliver to each other by address, with no kernel
 * and no real time, so channel tests can run under a `ManualClock`. Delivery is asynchronous (a
 * microtask), as with a real socket, so a send never re-enters the sender's own code.
 * Combine with `LossyDatagramSocket` for faults.
 */
import { FerryError } from '../util/index.js';
import type { DatagramSocketLike } from '../control/index.js';

type MessageListener = (msg: Buffer, rinfo: { address: string; port: number }) => void;

/** A set of in-memory sockets that can reach each other. */
export class MemoryDatagramNetwork {
  private readonly sockets = new Map<string, MemoryDatagramSocket>();
  private nextPort = 40000;
  /** Datagrams sent to an address nobody is bound to (lost, as UDP would). */
  undeliverable = 0;

  /**
   * Bind a socket at `ip:port` (port 0 picks a free one).
   *
   * @throws FerryError `FERRY_ERR_INVALID_ARGUMENT` when the address is taken.
   */
  bind(ip = '127.0.0.1', port = 0): MemoryDatagramSocket {
    let p = port;
    if (p === 0) {
      do p = this.nextPort++;
      while (this.sockets.has(`${ip}:${p}`));
    }
    const key = `${ip}:${p}`;
    if (this.sockets.has(key)) throw new FerryError('FERRY_ERR_INVALID_ARGUMENT', `${key} is already bound`);
    const s = new MemoryDatagramSocket(this, ip, p);
    this.sockets.set(key, s);
    return s;
  }

  /** @internal */
  route(from: MemoryDatagramSocket, buf: Buffer, port: number, ip: string): void {
    // Copy now: the receiver must not see later changes to the sender's buffer.
    const copy = Buffer.from(buf);
    const src = from.address();
    queueMicrotask(() => {
      const dest = this.sockets.get(`${ip}:${port}`);
      if (!dest) {
        this.undeliverable++;
        return;
      }
      dest.deliver(copy, src);
    });
  }

  /** @internal */
  unbind(s: MemoryDatagramSocket): void {
    const a = s.address();
    if (this.sockets.get(`${a.address}:${a.port}`) === s) this.sockets.delete(`${a.address}:${a.port}`);
  }
}

/** A socket of a {@link MemoryDatagramNetwork}. */
export class MemoryDatagramSocket implements DatagramSocketLike {
  private readonly listeners: MessageListener[] = [];
  private closed = false;

  /** Use {@link MemoryDatagramNetwork.bind}. */
  constructor(private readonly net: MemoryDatagramNetwork, private readonly ip: string, private readonly port: number) {}

  /** Send one datagram; delivered in a microtask, or lost if nothing is bound there. */
  send(buf: Buffer, port: number, address: string): void {
    if (!this.closed) this.net.route(this, buf, port, address);
  }

  /** Subscribe to received datagrams. */
  on(event: 'message', listener: MessageListener): this {
    if (event === 'message') this.listeners.push(listener);
    return this;
  }

  /** Unbind; datagrams in flight to this socket are lost. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.net.unbind(this);
  }

  /** The bound address. */
  address(): { address: string; port: number } {
    return { address: this.ip, port: this.port };
  }

  /** @internal */
  deliver(msg: Buffer, rinfo: { address: string; port: number }): void {
    if (this.closed) return;
    for (const l of this.listeners) l(msg, rinfo);
  }
}
