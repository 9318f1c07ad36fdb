// Scenario: allowed but malicious peers of a `ferry tunnel serve --allow-remote-listen` process ask
// it for reverse (-R) listeners it must not open. The peers are agents on a host in the test
// process that write LISTEN preambles themselves. (1) A non-loopback address (0.0.0.0), a
// privileged port (the serving end runs as root in CI, so the kernel would allow it) and a host
// name (a DNS lookup made for a stranger's string) are refused NOT_ALLOWED, as ssh's default
// GatewayPorts=no refuses them, with a coded log line. (2) Forty LISTENs (of "localhost") whose
// connection is aborted right after the request leave no listener bound and no place of the peer's
// TUNNEL_LISTENS_PER_PEER taken: the peer then gets all 16. (3) Two listeners on one port of two
// loopback addresses: ending one closes that one, not the other. (4) Seventeen allowed agents
// asking 16 each get TUNNEL_LISTENS_MAX (256) listeners in all, the rest refused. The serving end
// stays up throughout.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentSocket } from '../../src/connection/index.js';
import { readPreamble, type Host } from '../../src/host/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { limit } from '../../src/util/index.js';
import { encodeTunnelPreamble, TunnelKind, TunnelRefusal, type TunnelPreamble } from '../../src/wire/index.js';
import { waitFor } from '../helpers/harness.js';
import { Processes } from '../helpers/processes.js';
import { startPeerHost } from '../helpers/tunnel.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  procs.killAll();
});

const READY = /^ferry tunnel ready: agent=([0-9a-f]{32}) .*rendezvous=([0-9.]+:\d+)/m;

/** A TCP port nothing listens on now on 127.0.0.1 (bound, then closed). */
async function freeTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Resolves true if a TCP connection to host:port is accepted, false if it is refused. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

test('tunnel: a peer allowed to remote-listen gets no privileged port, no other address, no leaked listener, and at most TUNNEL_LISTENS_MAX', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-tunnel-rla-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const agents = Array.from({ length: 17 }, () => Identity.generate());
  const serve = await procs.start(['tunnel', 'serve', '--key', join(dir, 'serve.key'), '--to', '127.0.0.1:9', '--allow', agents.map((a) => a.id).join(','), '--allow-remote-listen'], READY);
  const serveAgent = serve.ready[1] as AgentId;
  const peer = await startPeerHost(serve.ready[2]!, agents);
  cleanups.push(() => peer.close());
  const host: Host = peer.host;
  const me = agents[0]!.id;

  /** One LISTEN on a connection of its own; resolves with the answer and the connection. */
  const ask = async (from: AgentId, at: { host: string; port: number }): Promise<{ fs: AgentSocket; answer: TunnelPreamble }> => {
    const fs = await host.connect(from, serveAgent);
    fs.on('error', () => {});
    fs.write(encodeTunnelPreamble({ kind: TunnelKind.LISTEN, ...at }));
    return { fs, answer: (await readPreamble(fs, 10_000)).preamble };
  };
  const notAllowed = { kind: TunnelKind.REFUSED, reason: TunnelRefusal.NOT_ALLOWED };

  // (1) What ssh's GatewayPorts=no and its privileged-port rule refuse.
  const privileged = 1000 + Math.floor(Math.random() * 20);
  for (const at of [{ host: '0.0.0.0', port: 0 }, { host: '127.0.0.1', port: privileged }, { host: 'example.invalid', port: 0 }]) {
    const { fs, answer } = await ask(me, at);
    fs.destroy();
    assert.deepEqual(answer, notAllowed, `LISTEN ${at.host}:${at.port}`);
  }
  assert.equal(await accepts('127.0.0.1', privileged), false, 'nothing bound the privileged port');
  await waitFor(() => serve.err().split('\n').filter((l) => l.includes('"tunnel_denied"') && l.includes('FERRY_ERR_TUNNEL_DENIED')).length === 3, 5000, 'three coded tunnel_denied lines');

  // (2) LISTENs whose connection is aborted at once: nothing stays bound, no place stays taken.
  const raced: number[] = [];
  for (let i = 0; i < 40; i++) {
    const port = await freeTcpPort();
    raced.push(port);
    const fs = await host.connect(me, serveAgent);
    fs.on('error', () => {});
    fs.write(encodeTunnelPreamble({ kind: TunnelKind.LISTEN, host: 'localhost', port }));
    // Aborted once the LISTEN has left (a destroy in the same turn discards it), at varied
    // moments of the serving end's bind.
    await new Promise((r) => (i % 2 === 0 ? setImmediate(r) : setTimeout(r, i % 4)));
    fs.destroy();
  }
  for (const port of raced) {
    let open = true;
    for (let t = 0; t < 100 && (open = await accepts('127.0.0.1', port)); t++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(open, false, `no listener stays on 127.0.0.1:${port} after its LISTEN was aborted`);
  }
  const mine: AgentSocket[] = [];
  for (let i = 0; i < limit('TUNNEL_LISTENS_PER_PEER'); i++) {
    const { fs, answer } = await ask(me, { host: '127.0.0.1', port: 0 });
    mine.push(fs);
    assert.equal(answer.kind, TunnelKind.LISTENING, `LISTEN ${i + 1} of ${limit('TUNNEL_LISTENS_PER_PEER')} after the aborted ones`);
  }
  const over = await ask(me, { host: '127.0.0.1', port: 0 });
  over.fs.destroy();
  assert.deepEqual(over.answer, notAllowed, 'one more than TUNNEL_LISTENS_PER_PEER');
  for (const fs of mine.splice(0)) fs.destroy();

  // (3) One port on two loopback addresses: ending one listener leaves the other.
  const shared = await freeTcpPort();
  let a: { fs: AgentSocket; answer: TunnelPreamble } | undefined;
  for (let t = 0; t < 50 && a?.answer.kind !== TunnelKind.LISTENING; t++) {
    a?.fs.destroy();
    a = await ask(me, { host: '127.0.0.1', port: shared });
    if (a.answer.kind !== TunnelKind.LISTENING) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(a!.answer.kind, TunnelKind.LISTENING, 'listener on 127.0.0.1');
  const b = await ask(me, { host: '127.0.0.2', port: shared });
  assert.equal(b.answer.kind, TunnelKind.LISTENING, 'listener on 127.0.0.2, same port');
  b.fs.destroy();
  let bOpen = true;
  for (let t = 0; t < 100 && (bOpen = await accepts('127.0.0.2', shared)); t++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(bOpen, false, 'the ended listener closed');
  assert.equal(await accepts('127.0.0.1', shared), true, 'the other listener on the same port is still there');
  a!.fs.destroy();

  // (4) Many allowed agents together: at most TUNNEL_LISTENS_MAX listeners.
  let listening = 0;
  let refused = 0;
  const held: AgentSocket[] = [];
  await Promise.all(
    agents.map(async (agent) => {
      for (let i = 0; i < limit('TUNNEL_LISTENS_PER_PEER'); i++) {
        const { fs, answer } = await ask(agent.id, { host: '127.0.0.1', port: 0 });
        held.push(fs);
        if (answer.kind === TunnelKind.LISTENING) listening++;
        else refused++;
      }
    }),
  );
  assert.equal(listening, limit('TUNNEL_LISTENS_MAX'), `listeners bound for ${agents.length} agents`);
  assert.equal(refused, agents.length * limit('TUNNEL_LISTENS_PER_PEER') - limit('TUNNEL_LISTENS_MAX'));
  for (const fs of held) fs.destroy();
  assert.equal(serve.child.exitCode, null, 'the serving end is still running');
  assert.doesNotMatch(serve.err(), /Unhandled|TypeError|RangeError/);
});
