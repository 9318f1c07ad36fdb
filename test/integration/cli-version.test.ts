// Scenario: `ferry --version` (and `-v`, `version`) prints the package's version and Node's, exit
// 0; the help lists it. The version is read from package.json, so a release cannot disagree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const PKG = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

test('ferry --version, -v and version print the package version', () => {
  for (const arg of ['--version', '-v', 'version']) {
    const out = execFileSync(process.execPath, [MAIN, arg], { encoding: 'utf8' });
    assert.equal(out, `ferry ${PKG.version} (node ${process.versions.node})\n`, arg);
  }
  assert.match(execFileSync(process.execPath, [MAIN, 'help'], { encoding: 'utf8' }), /ferry --version/);
});
