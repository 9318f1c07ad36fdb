// Makes `npm start` and `npm test` work on a fresh clone: installs exactly what the lockfile
// pins when node_modules is missing or stale, then compiles TypeScript (incremental, so a
// second run costs about a second). `npm ci` builds by itself (the package's `prepare` script),
// so after installing there is nothing left to compile.
import { execSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

const stamp = 'node_modules/.package-lock.json';
const stale = !existsSync(stamp) || statSync('package-lock.json').mtimeMs > statSync(stamp).mtimeMs;
if (stale) {
  console.error('ferry: installing dependencies (npm ci)…');
  execSync('npm ci --no-audit --no-fund --loglevel=error', { stdio: 'inherit' });
} else {
  execSync('npm run --silent build', { stdio: 'inherit' });
}
