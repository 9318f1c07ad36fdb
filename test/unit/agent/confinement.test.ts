// Confinement: an agent tries every way out of its worker (builtins by every spelling, files,
// data: URLs, process and its cousins, eval/Function, network globals, constructor chains) and
// meets FERRY_ERR_CONFINEMENT each time; a static import of a builtin fails the launch; the host
// and another agent keep working throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectWhenListening, echoRoundTrip, fixture, linesOf, startAgentNet } from '../../helpers/agents.js';

/** Attempts that are supposed to work: ordinary computation and the agent's own module. */
const ALLOWED = new Set(['self import by hash', 'crypto.subtle', 'setTimeout']);

test('every escape attempt meets FERRY_ERR_CONFINEMENT; the host and another agent go on', async () => {
  const net = await startAgentNet(1);
  try {
    const echo = await net.launch(0, fixture('echo.mjs'));
    const escape = await net.launch(0, fixture('escape.mjs'));
    const exit = await escape.exited;
    assert.equal(exit.reason, 'finished', exit.error?.message);
    const results = exit.result as Record<string, string>;
    assert.ok(Object.keys(results).length >= 40, 'all attempts ran');
    for (const [attempt, outcome] of Object.entries(results)) {
      if (ALLOWED.has(attempt)) assert.match(outcome, /^ALLOWED/, attempt);
      else if (attempt === 'redefine process') assert.match(outcome, /Cannot redefine property: process/, attempt);
      else if (attempt === 'require') assert.match(outcome, /require is not defined/, attempt);
      else assert.equal(outcome, 'FERRY_ERR_CONFINEMENT', attempt);
    }
    // Builtins, files and data: URLs are refused by specifier, not by luck of resolution.
    for (const s of ['node:fs', 'fs', 'node:net', 'node:child_process', 'node:worker_threads', 'node:vm', './neighbour.mjs', 'data:text/javascript,export default 1']) {
      assert.equal(results[`import(${s})`], 'FERRY_ERR_CONFINEMENT', s);
    }
    const sock = await connectWhenListening(net.hosts[0]!, echo.id);
    await echoRoundTrip(sock, 7, 200_000);
    sock.destroy();
    assert.deepEqual(net.runtimes[0]!.agentIds(), [echo.id]);
  } finally {
    await net.close();
  }
});

test('a static import of node:fs fails the launch with FERRY_ERR_CONFINEMENT and one log line', async () => {
  const net = await startAgentNet(1);
  try {
    const h = await net.launch(0, fixture('escape-static.mjs'));
    const exit = await h.exited;
    assert.equal(exit.reason, 'failed');
    assert.equal(exit.error?.code, 'FERRY_ERR_CONFINEMENT');
    assert.match(exit.error!.message, /node:fs/);
    const stopped = linesOf(net.log, 'agent_stopped').filter((l) => l.fields.agent === h.id);
    assert.equal(stopped.length, 1);
    assert.equal(stopped[0]!.fields.code, 'FERRY_ERR_CONFINEMENT');
  } finally {
    await net.close();
  }
});

test('a module that does not default-export defineAgent({ run }) is reported, not run', async () => {
  const net = await startAgentNet(1);
  try {
    const exit = await (await net.launch(0, fixture('bad-export.mjs'))).exited;
    assert.equal(exit.reason, 'failed');
    assert.equal(exit.error?.code, 'FERRY_ERR_AGENT_CRASHED');
    assert.match(exit.error!.message, /defineAgent/);
  } finally {
    await net.close();
  }
});

test('ctx is what the agent sees: id, host, owner, state, no connections; console goes to the host log', async () => {
  const net = await startAgentNet(1);
  try {
    const h = await net.launch(0, fixture('hello.mjs'), { state: { n: 1, list: [1, 2], when: new Date(0) } });
    const exit = await h.exited;
    assert.equal(exit.reason, 'finished');
    assert.deepEqual(exit.result, { id: h.id, hostId: net.hosts[0]!.id, owner: net.owner.id, state: { n: 1, list: [1, 2], when: new Date(0) }, connections: 0 });
    const texts = linesOf(net.log, 'agent_log').map((l) => l.fields.text);
    assert.deepEqual(texts, [`hello from ${h.id}`, 'console goes to ctx.log']);
    assert.equal(linesOf(net.log, 'agent_finished').length, 1);
  } finally {
    await net.close();
  }
});
