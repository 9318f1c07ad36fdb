// Scenario: a standalone `ferry rendezvous` process and three `ferry host --policy --rendezvous`
// processes on 127.0.0.1, each with its own data dir. Two agents launched with `ferry launch
// --credential`: a verifier (checks every byte against a known pattern) and a paced writer
// streaming to it. While the stream runs, `ferry migrate` moves the writer (B → C), then the
// verifier (A → B); the verifier ends with exactly the bytes written and no mismatch, each agent
// having run twice (launch + one landing). Then: migrating to a stopped host fails (exit 1, a typed
// error) and the agent is still listed at the source; and after the
// rendezvous is SIGTERMed and restarted on the same port with the same --snapshot, a migration
// still works and lookups find every agent at its host. Results are observed through the hosts'
// --verbose logs (ctx.log lines) and `ferry ls --json`.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCredential } from '../../src/agent/index.js';
import { credentialToText } from '../../src/host/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { RendezvousClient } from '../../src/location/index.js';
import { allowAll, fixture } from '../helpers/agents.js';
import { Processes, agentLogs, stop, waitLog, type Proc } from '../helpers/processes.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0).reverse()) await f();
});
const startProc = (args: string[], ready: RegExp): Promise<Proc> => procs.start(args, ready);
const ferry = (args: string[]): ReturnType<Processes['run']> => procs.run(args);
const lsIds = (dir: string): Promise<string[]> => procs.lsIds(dir);

test('three host processes and a rendezvous process: stream across two CLI moves, destination down, rendezvous restart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-3hosts-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const owner = Identity.generate();
  await writeFile(join(dir, 'policy.json'), JSON.stringify(allowAll(owner)));
  /** Write module, credential and key files for a fresh agent running fixture `name`. */
  const agentFiles = async (name: string, tag: string): Promise<{ id: AgentId; args: string[] }> => {
    const agent = Identity.generate();
    const code = fixture(name);
    await writeFile(join(dir, `${tag}.mjs`), code);
    await writeFile(join(dir, `${tag}.cred`), credentialToText(issueCredential(owner, { agent, code, rights: { listen: true, connect: '*' } })) + '\n');
    await writeFile(join(dir, `${tag}.key`), agent.seed().toString('hex') + '\n', { mode: 0o600 });
    return { id: agent.id, args: [join(dir, `${tag}.mjs`), '--credential', join(dir, `${tag}.cred`), '--agent-key', join(dir, `${tag}.key`)] };
  };

  const snapshot = join(dir, 'rendezvous.json');
  let rv = await startProc(['rendezvous', '--port', '0', '--snapshot', snapshot], /ferry rendezvous ready on (\S+):(\d+) /);
  const rvAddr = `${rv.ready[1]}:${rv.ready[2]}`;
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((x) => join(dir, x)) as [string, string, string, string];
  const host = (data: string): Promise<Proc> => startProc(['host', '--data-dir', data, '--policy', join(dir, 'policy.json'), '--rendezvous', rvAddr, '--verbose'], /^ferry host ready: /m);
  const hosts = await Promise.all([host(a), host(b), host(c)]);
  const hostIds = await Promise.all([a, b, c].map(async (x) => (JSON.parse(await readFile(join(x, 'host.json'), 'utf8')) as { host: string }).host));

  // About six seconds at the writer's pace: both CLI moves land mid-stream even on a loaded machine.
  const total = 6 * 1024 * 1024;
  const verifier = await agentFiles('verifier.mjs', 'verifier');
  const writer = await agentFiles('paced-writer.mjs', 'writer');
  const echo = await agentFiles('echo.mjs', 'echo');
  const launch = async (agent: { id: AgentId; args: string[] }, data: string, state?: unknown): Promise<void> => {
    const r = await ferry(['launch', ...agent.args, ...(state === undefined ? [] : ['--state', JSON.stringify(state)]), '--data-dir', data]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim(), `launched ${agent.id}`);
  };
  await launch(verifier, a, { hold: true });
  await launch(echo, a);
  // Last: the writer streams for about three seconds from its start, and a launch answers only
  // once run() began.
  await launch(writer, b, { peer: verifier.id, total, chunk: 8192, everyMs: 8, hold: true });

  // Move the writer mid-stream, then the verifier mid-stream.
  await waitLog(hosts, /^verifier verified=(\d+)/);
  const m1 = await ferry(['migrate', writer.id, c, '--data-dir', b]);
  assert.equal(m1.code, 0, m1.err);
  const resumedAt = Number((await waitLog(hosts, /^writer run=2 sent=(\d+)$/))[1]);
  assert.ok(resumedAt > 0 && resumedAt < total, `writer moved mid-stream (resumed at ${resumedAt} of ${total})`);
  await waitLog(hosts, /^verifier verified=(\d+)/, 10_000, (m) => Number(m[1]) > resumedAt);
  const m2 = await ferry(['migrate', verifier.id, b, '--data-dir', a]);
  assert.equal(m2.code, 0, m2.err);
  const verifiedAt = Number((await waitLog(hosts, /^verifier run=2 verified=(\d+) mismatches=0$/))[1]);
  assert.ok(verifiedAt > 0 && verifiedAt < total, `verifier moved mid-stream (had verified ${verifiedAt} of ${total})`);

  const done = await waitLog(hosts, /^verifier done verified=(\d+) mismatches=(\d+) runs=(\d+)$/, 15_000);
  assert.deepEqual([Number(done[1]), Number(done[2]), Number(done[3])], [total, 0, 2], 'every byte verified exactly once, no mismatch');
  const wdone = await waitLog(hosts, /^writer done sent=(\d+) runs=(\d+)$/);
  assert.deepEqual([Number(wdone[1]), Number(wdone[2])], [total, 2]);
  assert.ok(!agentLogs(hosts).some((t) => /mismatch at|socket error/.test(t)), agentLogs(hosts).join('\n'));
  assert.deepEqual(await lsIds(a), [echo.id]);
  assert.deepEqual(await lsIds(b), [verifier.id]);
  assert.deepEqual(await lsIds(c), [writer.id]);

  // Destination down: a host that ran once and was stopped (its host.json remains).
  const hostD = await host(d);
  assert.equal(await stop(hostD), 0);
  const down = await ferry(['migrate', echo.id, d, '--data-dir', a]);
  assert.notEqual(down.code, 0, down.out);
  // The agent rolled back and runs on at the source; the operator is told so, with the cause.
  assert.match(down.err, /^ferry: FERRY_ERR_MIGRATION_ROLLED_BACK: .*\n  cause: FERRY_ERR_[A-Z_]+: /m);
  // …down to the socket's own error: nothing listens on its redirector port any more.
  assert.match(down.err, /^  cause: ECONNREFUSED: connect ECONNREFUSED /m, down.err);
  assert.deepEqual(await lsIds(a), [echo.id], 'the agent runs on at the source');

  // Rendezvous restarted on the same port from its snapshot.
  assert.equal(await stop(rv), 0, rv.err());
  rv = await startProc(['rendezvous', '--port', String(rv.ready[2]), '--snapshot', snapshot], /ferry rendezvous ready on (\S+):(\d+) \((\d+) agents/);
  assert.equal(`${rv.ready[1]}:${rv.ready[2]}`, rvAddr);
  assert.ok(Number(rv.ready[3]) >= 3, `snapshot restored ${rv.ready[3]} agents`);
  const m3 = await ferry(['migrate', echo.id, c, '--data-dir', a]);
  assert.equal(m3.code, 0, m3.err);
  assert.deepEqual(await lsIds(a), []);
  assert.deepEqual(await lsIds(c), [echo.id, writer.id].sort());
  const client = await RendezvousClient.connect({ server: rvAddr });
  try {
    assert.equal((await client.lookup(echo.id))?.hostId, hostIds[2]);
    assert.equal((await client.lookup(writer.id))?.hostId, hostIds[2]);
    assert.equal((await client.lookup(verifier.id))?.hostId, hostIds[1]);
  } finally {
    client.close();
  }

  for (const h of hosts) assert.equal(await stop(h), 0, h.err().slice(-2000));
  assert.equal(await stop(rv), 0, rv.err());
});
