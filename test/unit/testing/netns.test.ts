// NetnsLab (src/testing/netns.ts): a lab's namespaces and its processes go on destroy(), and a
// lab whose process died without destroy() (SIGKILL) is swept by the next create(). Needs root
// and iproute2; without them it checks that netnsUnavailableReason() says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { netnsUnavailableReason, NetnsLab } from '../../../src/testing/index.js';

const namespaces = (): string[] =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);

test('NetnsLab: destroy removes its namespaces; a dead process’s lab is swept by the next create', async () => {
  const why = netnsUnavailableReason();
  if (why) {
    assert.notEqual(process.getuid?.(), 0, `netns unavailable although root: ${why}`);
    return;
  }
  // A process id that no longer exists: a child that has already exited.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const stale = [`fn${dead}sw`, `fn${dead}h0`];
  for (const ns of stale) execFileSync('ip', ['netns', 'add', ns]);
  const lab = NetnsLab.create(2);
  try {
    const now = namespaces();
    for (const ns of stale) assert.ok(!now.includes(ns), `stale ${ns} swept`);
    for (const ns of lab.names) assert.ok(now.includes(ns), `${ns} made`);
    const r = await lab.runNode(1, ['-e', `console.log(require('node:os').networkInterfaces()['fn${process.pid}v1'][0].address)`]);
    assert.equal(r.stdout.trim(), lab.ips[1], r.stderr);
    const ping = await lab.runNode(0, ['-e', `require('node:net').connect(9, ${JSON.stringify(lab.ips[1])}).on('error', (e) => console.log(e.code))`]);
    assert.equal(ping.stdout.trim(), 'ECONNREFUSED', 'the other namespace answers (a RST), so the bridge carries packets');
  } finally {
    lab.destroy();
    for (const ns of stale) spawnSync('ip', ['netns', 'del', ns]);
  }
  const after = namespaces();
  for (const ns of lab.names) assert.ok(!after.includes(ns), `${ns} removed`);
});
