// Scenario: `ferry rendezvous` as its own process. It prints one ready line with its address; a
// client registers a proven location and looks it up; SIGTERM stops it with exit 0 after the
// snapshot is flushed; a second process on the same snapshot serves the same directory and stops
// on SIGINT; a third on a port in use fails at once with a clear message and exit 1, and so does
// one given a Redis store where no Redis listens; --help exits 0.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Identity, freshChain } from '../../src/identity/index.js';
import { RendezvousClient } from '../../src/location/index.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const children = new Set<ChildProcessWithoutNullStreams>();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const f of cleanups.splice(0).reverse()) await f();
});

interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  readonly address: string;
  stderr(): string;
}

/** Start `ferry rendezvous ARGS` and wait for its ready line (bounded). */
async function start(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [MAIN, 'rendezvous', ...args], { stdio: 'pipe' });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within 5 s; stderr: ${err}`)), 5000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^ferry rendezvous ready on (\S+) /m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before ready; stderr: ${err}`));
    });
  });
  return { child, address, stderr: () => err };
}

async function stop(r: Running, signal: NodeJS.Signals): Promise<number | null> {
  const exited = once(r.child, 'exit') as Promise<[number | null]>;
  r.child.kill(signal);
  const [code] = await exited;
  return code;
}

async function connect(address: string, signer?: Identity): Promise<RendezvousClient> {
  const c = await RendezvousClient.connect({ server: address, ...(signer ? { signer } : {}) });
  cleanups.push(() => c.close());
  return c;
}

test('ferry rendezvous: ready line, register/lookup, graceful stop with snapshot, restart, port in use', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-rv-cli-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'directory.json');
  const agent = Identity.generate();
  const host = Identity.generate();

  const first = await start(['--port', '0', '--snapshot', file]);
  assert.match(first.address, /^127\.0\.0\.1:\d+$/);
  const c = await connect(first.address, host);
  await c.register({
    agent: agent.id,
    hostId: host.id,
    ip: '127.0.0.1',
    controlPort: 4100,
    redirectorPort: 4101,
    epoch: 1,
    agentKey: agent.publicRaw,
    chain: freshChain(agent, host.publicRaw, 1, Date.now()),
  });
  assert.equal((await (await connect(first.address)).lookup(agent.id))?.hostId, host.id);
  assert.equal(await stop(first, 'SIGTERM'), 0);
  assert.match(first.stderr(), /stopped on SIGTERM \(1 agents, snapshot .* written\)/);
  const snap = JSON.parse(await readFile(file, 'utf8')) as { entries: { agent: string; epoch: number; chain?: string }[] };
  assert.deepEqual(
    snap.entries.map((e) => [e.agent, e.epoch, typeof e.chain]),
    [[agent.id, 1, 'string']],
  );

  // A restarted rendezvous serves the same directory; a port in use is a clear startup error.
  const second = await start(['--port', '0', '--snapshot', file]);
  assert.equal((await (await connect(second.address)).lookup(agent.id))?.epoch, 1);
  const port = second.address.split(':')[1]!;
  const clash = spawn(process.execPath, [MAIN, 'rendezvous', '--port', port], { stdio: 'pipe' });
  children.add(clash);
  let clashErr = '';
  clash.stderr.on('data', (d: Buffer) => (clashErr += d.toString()));
  const [clashCode] = (await once(clash, 'exit')) as [number | null];
  children.delete(clash);
  assert.equal(clashCode, 1);
  assert.match(clashErr, /port .* in use/);
  assert.equal(await stop(second, 'SIGINT'), 0);

  // A Redis store nobody serves is a clear startup error too (FERRY_ERR_DIRECTORY_UNAVAILABLE).
  const noRedis = spawn(process.execPath, [MAIN, 'rendezvous', '--port', '0', '--store', 'redis://127.0.0.1:1'], { stdio: 'pipe' });
  children.add(noRedis);
  let noRedisErr = '';
  noRedis.stderr.on('data', (d: Buffer) => (noRedisErr += d.toString()));
  const [noRedisCode] = (await once(noRedis, 'exit')) as [number | null];
  children.delete(noRedis);
  assert.equal(noRedisCode, 1);
  assert.match(noRedisErr, /cannot start: FERRY_ERR_DIRECTORY_UNAVAILABLE: /);

  const help = spawn(process.execPath, [MAIN, 'rendezvous', '--help'], { stdio: 'pipe' });
  let helpOut = '';
  help.stdout.on('data', (d: Buffer) => (helpOut += d.toString()));
  const [helpCode] = (await once(help, 'exit')) as [number | null];
  assert.equal(helpCode, 0);
  assert.match(helpOut, /--snapshot FILE/);
});
