// Scenario: an allowed but malicious peer of a `ferry tunnel serve` process (an agent on a host
// written against the library in the test process) opens Ferry connections whose first bytes are
// not a good preamble: another version, an unknown kind, a LISTEN whose host has a '/', an ACCEPTED
// (an answer, sent as a request), and a LISTEN cut off after 100 of its 260 bytes. Each connection
// is aborted (PEER_ABORTED at the peer) with one tunnel_denied line naming the decoder's code, the
// truncated one after TUNNEL_ACCEPT_TIMEOUT_MS. A STREAM with the client's bytes in the same write
// (sent before ACCEPTED, as a careless opener would) gets them to the target first, in order.
// The serving end runs on.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { AgentSocket } from '../../src/connection/index.js';
import type { AgentId } from '../../src/identity/index.js';
import { Identity } from '../../src/identity/index.js';
import type { FerryError } from '../../src/util/index.js';
import { encodeTunnelPreamble, TunnelKind } from '../../src/wire/index.js';
import { waitFor } from '../helpers/harness.js';
import { Processes } from '../helpers/processes.js';
import { startPeerHost, startTunnelPair } from '../helpers/tunnel.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  procs.killAll();
});

test('tunnel: malformed, misplaced and truncated preambles from an allowed peer are aborted with a coded line', { timeout: 60_000 }, async () => {
  const got: Buffer[] = [];
  const target = createServer((s: Socket) => {
    s.on('error', () => {});
    s.on('data', (c: Buffer) => got.push(c));
  });
  target.listen(0, '127.0.0.1');
  await once(target, 'listening');
  cleanups.push(() => target.close());
  const peerAgent = Identity.generate();
  const pair = await startTunnelPair(procs, `127.0.0.1:${(target.address() as AddressInfo).port}`, { serveArgs: ['--allow', peerAgent.id] });
  cleanups.push(() => pair.close());
  const peer = await startPeerHost(pair.rendezvous, [peerAgent]);
  cleanups.push(() => peer.close());

  /** Open, write `bytes`, and resolve with how the connection ended. */
  const send = async (bytes: Buffer): Promise<string> => {
    const fs: AgentSocket = await peer.host.connect(peerAgent.id, pair.serveAgent as AgentId);
    return new Promise((resolve) => {
      let code = 'closed without an error';
      fs.on('error', (err: FerryError) => (code = err.code ?? String(err)));
      fs.once('close', () => resolve(code));
      fs.resume();
      fs.write(bytes);
    });
  };
  const listenHost = Buffer.from('a'.repeat(255), 'latin1');
  const cases: Array<[string, Buffer, string]> = [
    ['another version', Buffer.from([9, TunnelKind.STREAM]), 'FERRY_ERR_UNSUPPORTED_VERSION'],
    ['an unknown kind', Buffer.from([1, 77]), 'FERRY_ERR_MALFORMED_FRAME'],
    ['a host with a slash', Buffer.from([1, TunnelKind.LISTEN, 0x1f, 0x90, 3, 0x61, 0x2f, 0x62]), 'FERRY_ERR_MALFORMED_FRAME'],
    ['an ACCEPTED', encodeTunnelPreamble({ kind: TunnelKind.ACCEPTED }), 'FERRY_ERR_TUNNEL_DENIED'],
    ['a truncated LISTEN', Buffer.concat([Buffer.from([1, TunnelKind.LISTEN, 0x1f, 0x90, 255]), listenHost.subarray(0, 95)]), 'FERRY_ERR_HANDSHAKE_TIMEOUT'],
  ];
  const ended = await Promise.all(cases.map(([, bytes]) => send(bytes)));
  assert.deepEqual(ended, cases.map(() => 'FERRY_ERR_PEER_ABORTED'), 'each connection aborted');
  const denied = (): Array<{ code: string }> =>
    pair.serve
      .err()
      .split('\n')
      .filter((l) => l.includes('"tunnel_denied"'))
      .map((l) => JSON.parse(l) as { code: string });
  await waitFor(() => denied().length >= cases.length, 10_000, 'a line per connection');
  assert.deepEqual(denied().map((l) => l.code).sort(), cases.map(([, , code]) => code).sort(), pair.serve.err());

  // A STREAM and the client's bytes in one write: the bytes reach the target, first and in order.
  const fs = await peer.host.connect(peerAgent.id, pair.serveAgent as AgentId);
  fs.on('error', () => {});
  const early = Buffer.from('bytes sent before ACCEPTED\n');
  fs.write(Buffer.concat([encodeTunnelPreamble({ kind: TunnelKind.STREAM }), early]));
  await waitFor(() => Buffer.concat(got).length >= early.length, 10_000, 'the early bytes at the target');
  assert.deepEqual(Buffer.concat(got), early);
  fs.destroy();
  assert.equal(pair.serve.child.exitCode, null, 'the serving end runs');
  assert.doesNotMatch(pair.serve.err(), /Unhandled|TypeError|RangeError/);
});
