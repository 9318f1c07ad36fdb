// Scenario: `ferry bench --rounds N` is checked before anything is measured: a count that is not
// a whole number from 1 to 100 and a --suite list without tunnel (the only suite measured in
// rounds) exit 2 with the reason and print nothing on stdout; --help documents the option and
// FERRY_BENCH_ACK_NOW. The rounds themselves are unit-tested (test/unit/bench/rounds.test.ts);
// the measurement is not a test (STYLE.md §14).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { FERRY_MAIN } from '../helpers/processes.js';

const bench = (...args: string[]): { code: number | null; out: string; err: string } => {
  const r = spawnSync(process.execPath, [FERRY_MAIN, 'bench', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

test('ferry bench --rounds: bad counts and a suite list without tunnel exit 2 before measuring', () => {
  for (const bad of ['0', '101', '2.5', '-3', 'five', '']) {
    const r = bench('--suite', 'tunnel', `--rounds=${bad}`);
    assert.equal(r.code, 2, `--rounds=${bad}: ${r.err}`);
    assert.match(r.err, new RegExp(`--rounds must be a whole number from 1 to 100, got '${bad.replace('.', '\\.')}'`));
    assert.equal(r.out, '', 'nothing measured');
  }
  const open = bench('--suite', 'open', '--rounds', '3');
  assert.equal(open.code, 2, open.err);
  assert.match(open.err, /--rounds sets the rounds of the tunnel suite: add --suite tunnel/);
  assert.equal(open.out, '');

  const help = bench('--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /--rounds N +tunnel: measure in N rounds/);
  assert.match(help.out, /FERRY_BENCH_ACK_NOW=1/);
});
