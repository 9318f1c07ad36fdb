// Scenario: both tunnel ends' hosts change their addresses while traffic flows, as laptops that
// change networks. Three network namespaces on one bridge (NetnsLab): a `ferry rendezvous` in
// ns 0; in ns 1 `ferry tunnel serve --ip auto` (bound to every address, registering its current
// one) in front of a paced TCP target; in ns 2 `ferry tunnel connect --ip auto --listen` and a
// paced TCP client. While 12 MiB stream each way, ns 1's address is removed and another one added
// on the same link, and later ns 2's. Each host notices (it polls its interfaces), re-registers at
// the new address, and the connection resumes from there (RES with a location proof, a HELLO over
// the new path). Neither TCP program sees an error and every byte arrives once (sha256 both
// ways); a new tunnelled connection opened afterwards finds the serving end at its new address
// through the rendezvous. Prints the time from each change to bytes flowing again. Needs root;
// without it the test asserts that it is not root (so it never skips silently).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildLines } from '../helpers/child-lines.js';
import { netnsAvailable, NetnsLab } from '../helpers/netns.js';
import { poll } from '../helpers/processes.js';
import type { PeerResult } from '../helpers/tcp-sha-peer.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const PEER = fileURLToPath(new URL('../helpers/tcp-sha-peer.js', import.meta.url));
const MiB = 1024 * 1024;
/** Each way: 64 KiB every 20 ms (3.2 MiB/s), so the change lands mid-stream and a stall shows as a gap. */
const TOTAL = 12 * MiB;
const PACE = ['--chunk', String(64 * 1024), '--every', '20'];

/**
 * When bytes flowed again after the change at `t0`: the end of the longest arrival gap that ends
 * after it (and before `until`, the next change) (the stall; paced arrivals otherwise come every 20 ms, give or take a loaded machine).
 */
function resumedAfter(r: PeerResult, t0: number, until = Infinity): number | undefined {
  const after = r.gaps.filter(([, end]) => end > t0 && end <= until);
  if (after.length === 0) return undefined;
  const g = after.reduce((a, b) => (b[1] - b[0] > a[1] - a[0] ? b : a));
  return g[1] - t0;
}

test('tunnel: each end\'s host changes its address mid-stream; the tunnel resumes from the new ones', { timeout: 120_000 }, async () => {
  if (!netnsAvailable()) {
    assert.notEqual(process.getuid?.(), 0, 'netns unavailable although root');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'ferry-tunnel-roam-'));
  const lab = NetnsLab.create(3);
  const peers: ChildProcess[] = [];
  try {
    const id = await lab.runNode(2, [MAIN, 'tunnel', 'id', '--key', join(dir, 'connect.key')]);
    assert.equal(id.code, 0, id.stderr);
    const connectAgent = id.stdout.trim();

    const rv = new ChildLines(lab.spawnNode(0, [MAIN, 'rendezvous', '--host', lab.ips[0]!, '--port', '0']));
    const rvAddr = (await rv.wait(/^ferry rendezvous ready on (\S+:\d+) /, 10_000))[1]!;
    const spawnPeer = (i: number, args: string[]): ChildLines => {
      const child = lab.spawnNode(i, [PEER, ...args], { stdin: 'pipe' });
      peers.push(child);
      return new ChildLines(child);
    };
    const target = spawnPeer(1, ['target', '--bytes', String(TOTAL), ...PACE]);
    const targetPort = (await target.wait(/^listening (\d+)$/, 10_000))[1]!;

    const serve = new ChildLines(lab.spawnNode(1, [MAIN, 'tunnel', 'serve', '--key', join(dir, 'serve.key'), '--to', `127.0.0.1:${targetPort}`, '--allow', connectAgent, '--ip', 'auto', '--rendezvous', rvAddr, '--verbose']));
    const ready = await serve.wait(/^ferry tunnel ready: agent=([0-9a-f]{32}) .*redirector=([0-9.]+):\d+ .* roaming$/, 10_000);
    const serveAgent = ready[1]!;
    const before = lab.ips[1]!;
    assert.equal(ready[2], before, 'the roaming end registers its namespace address');
    const connect = new ChildLines(lab.spawnNode(2, [MAIN, 'tunnel', 'connect', serveAgent, '--key', join(dir, 'connect.key'), '--rendezvous', rvAddr, '--listen', '127.0.0.1:0', '--ip', 'auto', '--verbose']));
    const listenPort = (await connect.wait(/^ferry tunnel ready: .* listen=127\.0\.0\.1:(\d+) /, 10_000))[1]!;

    const client = spawnPeer(2, ['client', '--port', listenPort, '--bytes', String(TOTAL), ...PACE]);
    // Mid-stream: 2 MiB arrived each way.
    await target.wait(/^progress sent=\d+ received=(\d*)/, 20_000, 0);
    await poll(() => (progressOf(target) >= 2 * MiB && progressOf(client) >= 2 * MiB ? true : undefined), 20_000, () => `2 MiB each way before the change; target: ${target.err.slice(-500)}`);
    const t0 = Date.now();
    const after = lab.readdress(1, 60);
    const atChange = { toTarget: progressOf(target), toClient: progressOf(client) };
    // Then the connecting end's host moves too, once 6 MiB arrived each way.
    await poll(() => (progressOf(target) >= 6 * MiB && progressOf(client) >= 6 * MiB ? true : undefined), 30_000, () => `6 MiB each way before the second change; connect end: ${connect.err.slice(-1500)}`);
    const t1 = Date.now();
    const connectBefore = lab.ips[2]!;
    const connectAfter = lab.readdress(2, 70);
    const atChange2 = { toTarget: progressOf(target), toClient: progressOf(client) };

    await client.wait(/^result /, 60_000);
    await target.wait(/^result /, 60_000);
    const c = client.results()[0]!;
    const t = target.results()[0]!;
    assert.deepEqual(c.errors, [], 'the TCP client saw no error');
    assert.deepEqual(t.errors, [], 'the TCP target saw no error');
    assert.equal(t.received, TOTAL, 'the target received every byte once');
    assert.equal(c.received, TOTAL, 'the client received every byte once');
    assert.equal(t.receivedSha, c.sentSha, 'client -> target sha256');
    assert.equal(c.receivedSha, t.sentSha, 'target -> client sha256');
    assert.ok(atChange2.toTarget < TOTAL && atChange2.toClient < TOTAL, `both changes came mid-stream (${JSON.stringify([atChange, atChange2])})`);

    // The host noticed, and re-registered its agent at the new address.
    const changed = serve.events('address_changed');
    assert.deepEqual(changed.map((e) => [e.from, e.to]), [[before, after]], serve.err.slice(-2000));
    assert.ok(serve.events('agent_reregistered').some((e) => e.agent === serveAgent && e.ip === after), serve.err.slice(-2000));
    assert.deepEqual(connect.events('address_changed').map((e) => [e.from, e.to]), [[connectBefore, connectAfter]], connect.err.slice(-2000));

    // A new connection looks the serving end up again and reaches it at its new address.
    const second = spawnPeer(2, ['client', '--port', listenPort, '--bytes', String(256 * 1024), ...PACE]);
    await second.wait(/^result /, 30_000);
    await target.wait(/^result /, 30_000, 1);
    const c2 = second.results()[0]!;
    const t2 = target.results()[1]!;
    assert.deepEqual([c2.errors, t2.errors], [[], []], 'the second connection saw no error');
    assert.equal(t2.receivedSha, c2.sentSha, 'second connection: client -> target sha256');
    assert.equal(c2.receivedSha, t2.sentSha, 'second connection: target -> client sha256');

    const figures = (from: number, until?: number): string => `${resumedAfter(t, from, until) ?? 'no gap'} ms (client -> target), ${resumedAfter(c, from, until) ?? 'no gap'} ms (target -> client)`;
    console.log(`# serving end ${before} -> ${after}: bytes flowing again after ${figures(t0, t1)}`);
    console.log(`# connecting end ${connectBefore} -> ${connectAfter}: bytes flowing again after ${figures(t1)}`);

    for (const p of [serve, connect]) {
      const exited = once(p.child, 'exit') as Promise<[number | null]>;
      p.child.kill('SIGTERM');
      assert.equal((await exited)[0], 0);
    }
  } finally {
    for (const p of peers) p.stdin?.end();
    lab.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

/** Bytes a peer has received so far, from its last progress line. */
function progressOf(o: ChildLines): number {
  for (let i = o.lines.length - 1; i >= 0; i--) {
    const m = /^progress sent=\d+ received=(\d+)/.exec(o.lines[i]!);
    if (m) return Number(m[1]);
  }
  return 0;
}
