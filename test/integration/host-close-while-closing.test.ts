// Scenario: a connection is closing and its CLS is being retried (PROTOCOL.md §6.4): the peer's
// host answers PEER_MOVING, so the closer waits on the location service for the peer to land (up
// to PEER_MOVE_WAIT_MS) before its next CLS. Its host is stopped meanwhile (Host.close, "close
// every connection without ceremony"). The closing end must end with the host: CLOSED when
// close() returns, its close() settled, no retry or lookup left to run after the host is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DatagramSocketLike } from '../../src/control/index.js';
import type { Host } from '../../src/host/index.js';
import { FerryError } from '../../src/util/index.js';
import { FLAG_REPLY, MessageType, TYPE_ERROR, encodeDatagram, encodeErrorBody } from '../../src/wire/index.js';
import { startHosts, waitFor } from '../helpers/harness.js';
import { Link, sleep } from '../helpers/attacker.js';

/** A control socket that, once `moving`, answers every CLS request PEER_MOVING itself (its host never sees it). */
class MovingPeer implements DatagramSocketLike {
  moving = false;
  answered = 0;
  constructor(private readonly inner: DatagramSocketLike) {}
  send(buf: Buffer, port: number, address: string): void {
    this.inner.send(buf, port, address);
  }
  on(event: 'message', listener: (msg: Buffer, rinfo: { address: string; port: number }) => void): this {
    this.inner.on(event, (msg, rinfo) => {
      if (this.moving && msg[1] === MessageType.CLS && msg[2] === 0) {
        this.answered++;
        const reply = encodeDatagram({ type: TYPE_ERROR, flags: FLAG_REPLY, requestId: msg.readUInt32BE(4) }, encodeErrorBody(new FerryError('FERRY_ERR_PEER_MOVING', 'in transit')));
        this.inner.send(reply, rinfo.port, rinfo.address);
        return;
      }
      listener(msg, rinfo);
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

test('a host stopped while one of its connections retries its CLS ends that connection too', { timeout: 60_000 }, async () => {
  const peers: MovingPeer[] = [];
  const net = await startHosts(2, {
    wrapControlSocket: (s) => {
      const p = new MovingPeer(s);
      peers.push(p);
      return p;
    },
  });
  let stopped = false;
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const peer1 = peers[1]!;
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const link = await Link.open(h0, a.id, h1, b.id, 410);
    await link.exchange(10_000, 'before');

    peer1.moving = true;
    let settled = false;
    const closing = link.a.close().finally(() => (settled = true));
    // The CLS is answered PEER_MOVING: the closer now waits for the peer to land.
    await waitFor(() => peer1.answered >= 1, 8000, 'the CLS answered PEER_MOVING');
    await sleep(300);
    assert.equal(link.a.state, 'CLOSE_SENT', 'closing, waiting for the peer to land');

    await h0.close();
    stopped = true;
    await sleep(200);
    assert.equal(link.a.state, 'CLOSED', 'the closing end ended with its host');
    assert.ok(settled, 'close() settled');
    await closing;
  } finally {
    if (!stopped) await net.hosts[0]!.close();
    await net.close();
  }
});
