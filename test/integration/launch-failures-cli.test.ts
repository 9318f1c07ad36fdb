// Scenario: what an operator sees when agents fail or end, with a host at its default level (no
// --verbose). `ferry launch` of a module with a syntax error, without a default export, or with a
// static `import 'node:fs'` exits 1 with the agent's code and message and leaves nothing running;
// an agent that finishes has its ctx.log line, start and result printed by the host, shown by
// `ferry logs` and `ferry ls`; a move to a port nobody listens on prints ECONNREFUSED in the
// cause chain, a move to the agent's own host says so; `ferry stop` and `ferry stop --kill` end
// an agent (`ferry ls` lists it as stopped), and stopping an unknown agent says so.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { launchDir, type LaunchFiles } from '../helpers/launch-files.js';
import { Processes, poll, stop } from '../helpers/processes.js';

const procs = new Processes();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0)) await f();
});

const HOST_READY = /^ferry host ready: /m;

test('launch failures, results, logs, stop and move errors reach the operator', async () => {
  const work = await launchDir('ferry-failures-');
  cleanups.push(() => work.remove());
  const { dir } = work;
  /** Write module, key and credential for a fixture; returns the ferry launch arguments. */
  const prepare = async (name: string, agent?: LaunchFiles['agent']): Promise<{ agent: LaunchFiles['agent']; args: string[] }> => {
    const files = await work.agentFiles(name, { rights: { listen: true, connect: '*' }, ...(agent ? { agent } : {}) });
    return { agent: files.agent, args: ['launch', ...files.args, '--data-dir', join(dir, 'h')] };
  };
  const host = await procs.start(['host', '--data-dir', join(dir, 'h'), '--policy', work.policy], HOST_READY);
  const ferry = (args: string[]): ReturnType<Processes['run']> => procs.run(args);
  const h = join(dir, 'h');

  for (const [name, re] of [
    ['syntax-error.mjs', /^ferry: FERRY_ERR_AGENT_CRASHED: SyntaxError: /m],
    ['bad-export.mjs', /^ferry: FERRY_ERR_AGENT_CRASHED: .*must default-export defineAgent/m],
    ['escape-static.mjs', /^ferry: FERRY_ERR_CONFINEMENT: .*may not import "node:fs"/m],
  ] as const) {
    const { args } = await prepare(name);
    const r = await ferry(args);
    assert.equal(r.code, 1, `${name}: ${r.out}`);
    assert.match(r.err, re, name);
    assert.doesNotMatch(r.out, /launched/, name);
  }
  assert.deepEqual(await procs.lsIds(h), [], 'nothing left running');

  const answer = await prepare('answer.mjs');
  const launched = await ferry([...answer.args, '--state', '{"question":"life"}']);
  assert.equal(launched.code, 0, launched.err);
  const id = answer.agent.id;
  // The host's default output: the agent's log line, its start and its result.
  await poll(() => new RegExp(`agent ${id} finished: \\{"answer":42\\}`).exec(host.out()), 10_000, () => host.out());
  assert.match(host.out(), new RegExp(`agent ${id} started\\n`));
  assert.match(host.out(), new RegExp(`agent ${id}: thinking about life\\n`));
  const logs = await ferry(['logs', '--data-dir', h]);
  assert.match(logs.out, new RegExp(`agent ${id} finished: \\{"answer":42\\}`));
  assert.match(logs.out, / failed: FERRY_ERR_CONFINEMENT: .*may not import "node:fs"/);
  const ls = await ferry(['ls', '--data-dir', h]);
  assert.match(ls.out, new RegExp(`agent ${id}  finished  at \\S+: \\{"answer":42\\}`));
  assert.match(ls.out, /failed  at \S+: FERRY_ERR_AGENT_CRASHED: SyntaxError: /);

  const echo = await prepare('echo.mjs');
  assert.equal((await ferry(echo.args)).code, 0);
  const moveSelf = await ferry(['migrate', echo.agent.id, h, '--data-dir', h]);
  assert.equal(moveSelf.code, 1);
  assert.match(moveSelf.err, /^  cause: FERRY_ERR_INVALID_ARGUMENT: .*already lives here/m, moveSelf.err);
  const refused = await ferry(['migrate', echo.agent.id, '127.0.0.1:1', '--data-dir', h]);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /^  cause: ECONNREFUSED: connect ECONNREFUSED 127\.0\.0\.1:1$/m, refused.err);
  assert.deepEqual(await procs.lsIds(h), [echo.agent.id], 'the echo agent runs on after both refusals');

  const stopped = await ferry(['stop', echo.agent.id, '--data-dir', h]);
  assert.equal(stopped.code, 0, stopped.err);
  assert.match((await ferry(['ls', '--data-dir', h])).out, new RegExp(`agent ${echo.agent.id}  stopped  at \\S+: FERRY_ERR_ABORTED: stopped by the operator`));
  const again = await prepare('echo.mjs', echo.agent);
  assert.equal((await ferry(again.args)).code, 0);
  const killed = await ferry(['stop', '--kill', echo.agent.id, '--data-dir', h]);
  assert.equal(killed.code, 0, killed.err);
  assert.match(killed.out, /killed/);
  assert.deepEqual(await procs.lsIds(h), []);
  const unknown = await ferry(['stop', echo.agent.id, '--data-dir', h]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /FERRY_ERR_UNKNOWN_AGENT/);

  assert.equal(await stop(host), 0);
});
