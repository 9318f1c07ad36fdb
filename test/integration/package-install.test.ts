// Scenario: a Node developer installs Ferry as a package. `npm pack` (whose prepack builds)
// makes the tarball; a fresh app installs it (its dependencies from npm's cache, else the
// registry); `import('ferry')`, `ferry/agent` and `ferry/testing` resolve; the README's "Using it"
// example, extracted from README.md, type-checks with `tsc --strict` against the shipped .d.ts
// files and runs to completion (it prints the echoed lines and exits by itself).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, readmeBlock } from '../helpers/readme.js';

const run = promisify(execFile);
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const f of cleanups.splice(0)) await f();
});

test('npm pack, install the tarball into an app, tsc --strict the README example and run it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-pack-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await run('npm', ['pack', '--pack-destination', dir, '--loglevel=error'], { cwd: REPO_ROOT });
  const [tarball] = (await readdir(dir)).filter((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack made no tarball');
  const { stdout: listing } = await run('tar', ['tzf', join(dir, tarball)]);
  for (const f of ['package/LICENSE', 'package/dist/src/index.js', 'package/dist/src/index.d.ts', 'package/dist/src/agent/define.d.ts']) assert.ok(listing.split('\n').includes(f), `${f} not in the tarball`);
  assert.ok(!/^package\/(dist\/test|dist\/bench|src)\//m.test(listing), 'tests, benches or sources in the tarball');

  const app = join(dir, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(dir, tarball)], { cwd: app });

  const probe = async (code: string): Promise<string> => (await run(process.execPath, ['-e', code], { cwd: app })).stdout.trim();
  assert.equal(await probe(`import('ferry').then(m => console.log(typeof m.Host))`), 'function');
  assert.equal(await probe(`import('ferry').then(m => console.log([typeof m.FerryError, typeof m.isFerryError, typeof m.RendezvousClient, typeof m.issueCredential].join()))`), 'function,function,function,function');
  // Internals stay out of the public surface.
  assert.equal(await probe(`import('ferry').then(m => console.log(['DataSocket', 'encodeFrame', 'Endpoint', 'ControlChannel'].filter(k => k in m).join() || 'none'))`), 'none');
  assert.equal(await probe(`import('ferry/agent').then(m => console.log(typeof m.defineAgent, typeof m.errorCode))`), 'function function');
  assert.equal(await probe(`import('ferry/testing').then(m => console.log(typeof m.MemoryDatagramNetwork))`), 'function');

  // The consumer: README's example verbatim. Its TypeScript and Node type definitions come from
  // this checkout (the app would install them from the registry; the test stays offline).
  await writeFile(join(app, 'main.ts'), readmeBlock('## Using it', 'ts'));
  await mkdir(join(app, 'node_modules', '@types'), { recursive: true });
  await symlink(join(REPO_ROOT, 'node_modules', '@types', 'node'), join(app, 'node_modules', '@types', 'node'), 'dir');
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await run(process.execPath, [tsc, '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--outDir', 'out', 'main.ts'], { cwd: app }).catch((err: { stdout?: string }) => {
    assert.fail(`tsc --strict on README's example failed:\n${err.stdout ?? String(err)}`);
  });
  const { stdout } = await run(process.execPath, [join(app, 'out', 'main.js')], { cwd: app, timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), ['hello', 'still here']);
});
