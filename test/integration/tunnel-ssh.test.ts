// Scenario: an sshd started here (its own config, host key and user key made with ssh-keygen in a
// temp dir, on a free port), `ferry tunnel serve --to` it and `ferry tunnel connect --listen` as
// processes (sealed). While the data path between the tunnel hosts is cut every 250 ms: ssh runs
// a remote command through the tunnel and prints its output; scp uploads a 4 MiB random file and
// downloads it again, in rounds until the cuts have reset data sockets three times. Both copies have the original's sha256, and ssh and scp exit 0.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeTcpPort } from '../../src/testing/index.js';
import { Processes } from '../helpers/processes.js';
import { waitFor } from '../helpers/harness.js';
import { Cutter, runProgram, startTunnelPair } from '../helpers/tunnel.js';

const procs = new Processes();
let sshd: ChildProcess | undefined;
let dir: string | undefined;
after(async () => {
  procs.killAll();
  sshd?.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('tunnel: ssh remote command and scp both ways through a tunnel cut every 250 ms', async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-tunnel-ssh-'));
  for (const key of ['host', 'user']) {
    const r = await runProgram('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, key)]);
    assert.equal(r.code, 0, `ssh-keygen: ${r.stderr}`);
  }
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'user.pub')));
  const port = await freeTcpPort();
  await writeFile(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'PermitRootLogin yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'Subsystem sftp internal-sftp',
    ].join('\n') + '\n',
  );
  // sshd's privilege-separation directory; Debian creates it only when the service starts.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  let sshdErr = '';
  sshd = spawn('/usr/sbin/sshd', ['-f', join(dir, 'sshd_config'), '-D', '-e'], { stdio: ['ignore', 'ignore', 'pipe'] });
  sshd.stderr!.on('data', (c: Buffer) => (sshdErr += c.toString()));
  await waitFor(() => /Server listening on 127\.0\.0\.1/.test(sshdErr) || sshd!.exitCode !== null, 10_000, 'sshd listening');
  assert.equal(sshd.exitCode, null, `sshd: ${sshdErr}`);

  const pair = await startTunnelPair(procs, `127.0.0.1:${port}`);
  const opts = ['-i', join(dir, 'user'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
  const file = randomBytes(4 * 1024 * 1024);
  await writeFile(join(dir, 'original'), file);

  const cutter = new Cutter(pair.redirectorPorts, 250).start();
  const cmd = await runProgram('ssh', [...opts, '-p', String(pair.listenPort), 'root@127.0.0.1', `echo ferry-tunnel-ok; sha256sum ${join(dir, 'original')}`], { timeoutMs: 60_000 });
  assert.equal(cmd.code, 0, `ssh: ${cmd.stderr}`);
  assert.equal(cmd.stdout, `ferry-tunnel-ok\n${sha(file)}  ${join(dir, 'original')}\n`);
  // Rounds of scp up and down until the cuts reset data sockets three times (a fast machine
  // copies 4 MiB within a cut's interval).
  let rounds = 0;
  do {
    const up = await runProgram('scp', [...opts, '-P', String(pair.listenPort), join(dir, 'original'), `root@127.0.0.1:${join(dir, 'uploaded')}`], { timeoutMs: 60_000 });
    const down = await runProgram('scp', [...opts, '-P', String(pair.listenPort), `root@127.0.0.1:${join(dir, 'uploaded')}`, join(dir, 'downloaded')], { timeoutMs: 60_000 });
    rounds++;
    assert.equal(up.code, 0, `scp upload: ${up.stderr}`);
    assert.equal(down.code, 0, `scp download: ${down.stderr}`);
    assert.equal(sha(await readFile(join(dir, 'uploaded'))), sha(file), 'uploaded copy');
    assert.equal(sha(await readFile(join(dir, 'downloaded'))), sha(file), 'downloaded copy');
    await rm(join(dir, 'uploaded'));
    await rm(join(dir, 'downloaded'));
  } while (cutter.killed < 3 && rounds < 10);
  const { cuts, killed } = await cutter.stop();
  assert.ok(cuts >= 3 && killed >= 3, `cuts=${cuts} sockets reset=${killed}`);
  console.log(`# ${cuts} cuts, ${killed} data sockets reset`);
  await pair.close();
});
