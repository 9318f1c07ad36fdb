// Makes `npm test` work on a fresh machine: the tests start their own redis-server, iperf3 and
// sshd (never a system service), so those programs must be installed. As root it installs the
// missing ones from Debian's archive; otherwise it stops at once with the one line to run.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Program the tests run -> the Debian package that ships it. */
const NEEDED = [
  ['/usr/bin/redis-server', 'redis-server'],
  ['/usr/bin/redis-cli', 'redis-tools'],
  ['/usr/bin/redis-benchmark', 'redis-tools'],
  ['/usr/bin/iperf3', 'iperf3'],
  ['/usr/sbin/sshd', 'openssh-server'],
  ['/usr/bin/ssh', 'openssh-client'],
  // ss -K cuts the tunnel tests' data path; ip makes the network namespaces.
  ['/usr/bin/ss', 'iproute2'],
];

const missing = [...new Set(NEEDED.filter(([path]) => !existsSync(path)).map(([, pkg]) => pkg))];
if (missing.length > 0) {
  const line = `apt-get update && apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    console.error(`ferry: the tests need ${missing.join(', ')}; run as root:\n  ${line}`);
    process.exit(1);
  }
  console.error(`ferry: installing ${missing.join(', ')} (apt-get)…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execSync('apt-get update', { stdio: ['ignore', 'ignore', 'inherit'], env });
  execSync(`apt-get install -y --no-install-recommends ${missing.join(' ')}`, { stdio: ['ignore', 'ignore', 'inherit'], env });
}
