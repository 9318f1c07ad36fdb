// Scenario: an operator's `ferry host --config FILE` with a misspelt key or a wrong type is
// refused at start (exit 2, naming the key and the known ones) instead of silently ignored, as a
// misspelt flag already is; a data directory that cannot be made is reported once; a valid
// config starts the host.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Processes, stop } from '../helpers/processes.js';

const procs = new Processes();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0)) await f();
});

test('ferry host --config refuses unknown keys and wrong types, and takes valid ones', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-config-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const write = async (name: string, cfg: unknown): Promise<string> => {
    await writeFile(join(dir, name), JSON.stringify(cfg));
    return join(dir, name);
  };
  const typo = await procs.run(['host', '--config', await write('typo.json', { 'data-dir': join(dir, 'h'), polcy: 'p.json' })]);
  assert.equal(typo.code, 2, typo.out);
  assert.match(typo.err, /unknown key "polcy" \(known: .*policy/);
  const wrong = await procs.run(['host', '--config', await write('wrong.json', { 'data-dir': join(dir, 'h'), verbose: 'yes' })]);
  assert.equal(wrong.code, 2, wrong.out);
  assert.match(wrong.err, /verbose must be true or false, got "yes"/);
  // A data directory that cannot be made is reported once, with the system's reason.
  const bad = await procs.run(['host', '--data-dir', join(await write('a-file.json', {}), 'sub')]);
  assert.equal(bad.code, 2, bad.out);
  assert.match(bad.err, /^ferry: cannot use data directory .*: ENOTDIR: not a directory/m);
  assert.equal(bad.err.match(/ENOTDIR/g)?.length, 1, bad.err);
  const ok = await procs.start(['host', '--config', await write('ok.json', { 'data-dir': join(dir, 'h'), 'admin-port': 0, name: 'configured' })], /^ferry host ready: /m);
  assert.equal(await stop(ok), 0);
});
