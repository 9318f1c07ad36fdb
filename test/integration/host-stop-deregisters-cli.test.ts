// Scenario: what ends on a host leaves the directory, so the agent can be launched elsewhere
// without --replace. One `ferry rendezvous` process and three `ferry host` processes. An agent
// that finished on h1 launches again on h2. An echo agent on h1 is refused on h2
// (AGENT_ELSEWHERE) while it runs; after `ferry stop` on h1 it launches on h2; after h2 is
// stopped gracefully (SIGTERM, which deregisters what it held, its own entry by id too: a
// migration naming h2 by id is then refused UNKNOWN_HOST) it launches on h3. Killed hosts
// send nothing: after SIGKILL of h3 its entry stays, a launch on h1 is refused, and --replace is
// what applies.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { launchDir, type LaunchFiles } from '../helpers/launch-files.js';
import { Processes, kill, poll, stop } from '../helpers/processes.js';
import { startRendezvousNodes } from '../helpers/rendezvous.js';

const procs = new Processes();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0)) await f();
});

const HOST_READY = /^ferry host ready: id=([0-9a-f]{32}) /m;

test('a finished, stopped or gracefully stopped agent is deregistered and launches elsewhere; a killed host still needs --replace', { timeout: 120_000 }, async () => {
  const work = await launchDir('ferry-dereg-');
  cleanups.push(() => work.remove());
  const { dir } = work;
  const echo = await work.agentFiles('echo.mjs', { rights: { listen: true } });
  const once = await work.agentFiles('finish-soon.mjs', { name: 'once', rights: {} });
  const launch = (files: LaunchFiles, data: string, ...extra: string[]): ReturnType<Processes['run']> => procs.run(['launch', ...files.args, '--data-dir', data, ...extra]);

  const { nodes: [rv], addresses: [rendezvous] } = await startRendezvousNodes(procs, 1);
  const [d1, d2, d3] = ['h1', 'h2', 'h3'].map((x) => join(dir, x)) as [string, string, string];
  const start = (d: string): ReturnType<Processes['start']> => procs.start(['host', '--data-dir', d, '--policy', work.policy, '--rendezvous', rendezvous!], HOST_READY);
  const h1 = await start(d1);
  const h2 = await start(d2);
  const h3 = await start(d3);

  // An agent whose run() returned: its entry goes with it.
  const first = await launch(once, d1, '--state', '{"ms":0}');
  assert.equal(first.code, 0, first.err);
  await poll(() => new RegExp(`agent ${once.agent.id} deregistered`).exec(h1.out()), 20_000, () => `h1 never deregistered the finished agent:\n${h1.out()}`);
  const again = await launch(once, d2, '--state', '{"ms":0}');
  assert.equal(again.code, 0, `a finished agent launches on another host: ${again.err}`);

  // While it runs on h1, a launch on h2 is refused; once stopped there, it is not.
  assert.equal((await launch(echo, d1)).code, 0);
  const twice = await launch(echo, d2);
  assert.equal(twice.code, 1, twice.out);
  assert.match(twice.err, /FERRY_ERR_AGENT_ELSEWHERE/);
  const stopped = await procs.run(['stop', echo.agent.id, '--data-dir', d1]);
  assert.equal(stopped.code, 0, stopped.err);
  const onH2 = await launch(echo, d2);
  assert.equal(onH2.code, 0, `launch after 'ferry stop' elsewhere: ${onH2.err}`);

  // A host stopped gracefully deregisters what it held.
  assert.equal(await stop(h2), 0, h2.err());
  assert.match(h2.out(), new RegExp(`agent ${echo.agent.id} deregistered`));
  const onH3 = await launch(echo, d3);
  assert.equal(onH3.code, 0, `launch after a graceful host stop: ${onH3.err}`);
  const toStopped = await procs.run(['migrate', echo.agent.id, h2.ready[1]!, '--data-dir', d3]);
  assert.equal(toStopped.code, 1, toStopped.out);
  assert.match(toStopped.err, /FERRY_ERR_UNKNOWN_HOST/, 'a stopped host\'s own entry is gone, so its id names no host');

  // A killed host sends nothing: its entry stays, and --replace is what applies.
  await kill(h3);
  const refused = await launch(echo, d1);
  assert.equal(refused.code, 1, refused.out);
  assert.match(refused.err, /FERRY_ERR_AGENT_ELSEWHERE/);
  const replaced = await launch(echo, d1, '--replace');
  assert.equal(replaced.code, 0, replaced.err);

  assert.equal(await stop(h1), 0, h1.err());
  assert.equal(await stop(rv!), 0, rv!.err());
});
