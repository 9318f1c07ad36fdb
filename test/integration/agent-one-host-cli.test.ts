// Scenario: an agent never runs on two hosts, as operators meet it. With an echo agent running on
// h1, `ferry launch` of the same agent key on h2 is refused (FERRY_ERR_AGENT_ELSEWHERE, exit 1);
// with --replace it is registered on h2, and h1 fences its copy (one line, FERRY_ERR_FENCED), so
// `ferry ls` lists the agent on h2 only. A host whose rendezvous does not answer says so, and a
// launch there fails with nothing left running. A launch on a host without --policy, or without
// --agent-key, says what to do.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { launchDir } from '../helpers/launch-files.js';
import { Processes, freeUdpPort, poll, stop } from '../helpers/processes.js';

const procs = new Processes();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0)) await f();
});

const HOST_READY = /^ferry host ready: /m;

test('one agent, one host: a second launch is refused, --replace fences the old copy; a dead rendezvous leaves nothing running', async () => {
  const work = await launchDir('ferry-one-host-');
  cleanups.push(() => work.remove());
  const { dir } = work;
  const echo = await work.agentFiles('echo.mjs', { rights: { listen: true } });
  const { agent } = echo;
  const [h1, h2, h3, h4] = ['h1', 'h2', 'h3', 'h4'].map((x) => join(dir, x)) as [string, string, string, string];
  const launch = (data: string, ...extra: string[]): ReturnType<Processes['run']> =>
    procs.run(['launch', ...echo.args, '--data-dir', data, ...extra]);

  const host1 = await procs.start(['host', '--data-dir', h1, '--policy', work.policy], HOST_READY);
  const { rendezvous } = JSON.parse(await readFile(join(h1, 'host.json'), 'utf8')) as { rendezvous: string };
  const host2 = await procs.start(['host', '--data-dir', h2, '--policy', work.policy, '--rendezvous', rendezvous], HOST_READY);

  assert.equal((await launch(h1)).code, 0);
  const twice = await launch(h2);
  assert.equal(twice.code, 1, twice.out);
  assert.match(twice.err, new RegExp(`^ferry: FERRY_ERR_AGENT_ELSEWHERE: agent ${agent.id} is registered on host `, 'm'));
  assert.deepEqual(await procs.lsIds(h2), [], 'the refused launch left nothing on h2');
  assert.deepEqual(await procs.lsIds(h1), [agent.id]);

  const replaced = await launch(h2, '--replace');
  assert.equal(replaced.code, 0, replaced.err);
  await poll(() => /fenced: FERRY_ERR_FENCED/.exec(host1.out()), 20_000, () => `h1 never fenced its copy:\n${host1.out()}`);
  assert.equal(host1.out().match(/fenced/g)?.length, 1, host1.out());
  assert.match(host1.out(), new RegExp(`agent ${agent.id} fenced: FERRY_ERR_FENCED: .*registered by host `));
  assert.deepEqual(await procs.lsIds(h1), [], 'the stale copy is gone from h1');
  assert.deepEqual(await procs.lsIds(h2), [agent.id], 'the agent runs on h2 only');

  // A host whose rendezvous does not answer says so; a launch there fails and is rolled back.
  const host3 = await procs.start(['host', '--data-dir', h3, '--policy', work.policy, '--rendezvous', `127.0.0.1:${await freeUdpPort()}`], HOST_READY);
  await poll(() => /rendezvous \S+ does not answer/.exec(host3.out()), 20_000, () => host3.out());
  const lost = await launch(h3, '--replace');
  assert.equal(lost.code, 1, lost.out);
  assert.match(lost.err, /FERRY_ERR_CONTROL_TIMEOUT/);
  assert.deepEqual(await procs.lsIds(h3), [], 'nothing left running after a launch whose registration failed');

  // A host without --policy, and a launch without --agent-key, say what to do.
  await procs.start(['host', '--data-dir', h4, '--rendezvous', rendezvous], HOST_READY);
  const noPolicy = await launch(h4);
  assert.equal(noPolicy.code, 1);
  assert.match(noPolicy.err, /restart it with --policy FILE/);
  const noKey = await procs.run(['launch', ...echo.args.slice(0, 3), '--data-dir', h1]);
  assert.equal(noKey.code, 2);
  assert.match(noKey.err, /launch needs --agent-key FILE/);

  for (const h of [host3, host2, host1]) assert.equal(await stop(h), 0);
});
