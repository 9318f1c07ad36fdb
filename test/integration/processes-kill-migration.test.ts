// Scenario: host processes killed (SIGKILL) in the middle of a `ferry migrate`, at points made
// deterministic by the test-only fault hook of `ferry host` (FERRY_TEST_FAULT, see src/cli/host.ts):
// the host freezes at the point and prints a line, and the test kills it then.
// 1. The destination is killed once the whole checkpoint has reached it, before it commits: the
//    migration rolls back, `ferry migrate` exits non-zero with MIGRATION_ROLLED_BACK and a cause,
//    the writer runs on at the source (listed there, registered there), its stream goes on, a
//    later migration to a live host commits, and the verifier sees every byte exactly once.
// 2. The source is killed right after the destination committed (COMMITTED has reached it): the
//    verifier lives at the destination (listed there, registered there), the writer's connection
//    resumes towards the new location, and the stream completes exactly once.
// Each uses a `ferry rendezvous` process and `ferry host --policy --rendezvous --verbose`
// processes on 127.0.0.1; agents are test/fixtures/agents/verifier.mjs and paced-writer.mjs.
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
import { Processes, agentLogs, baseEnv, kill, poll as waitFor, stop, waitLog, type Proc } from '../helpers/processes.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0).reverse()) await f();
});
const startProc = (args: string[], ready: RegExp, env?: NodeJS.ProcessEnv): Promise<Proc> => procs.start(args, ready, env);
const ferry = (args: string[]): ReturnType<Processes['run']> => procs.run(args);
const lsIds = (dir: string): Promise<string[]> => procs.lsIds(dir);

/** The highest N in agent logs "verifier … verified=N". */
const verifiedSoFar = (hosts: Proc[]): number => Math.max(0, ...agentLogs(hosts).map((t) => Number(/^verifier (?:run=\d+ )?verified=(\d+)/.exec(t)?.[1] ?? 0)));

interface World {
  dir: string;
  rv: Proc;
  rvAddr: string;
  /** Start a host process with data dir DIR/name, optionally with a test fault. */
  host(name: string, fault?: string): Promise<Proc & { data: string; id: string }>;
  /** Module, credential and key files for a fresh agent running fixture `name`. */
  agent(name: string, tag: string): Promise<{ id: AgentId; args: string[] }>;
  launch(agent: { id: AgentId; args: string[] }, data: string, state: unknown): Promise<void>;
  lookupHost(agent: AgentId): Promise<string | undefined>;
}

async function world(tag: string): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), `ferry-kill-${tag}-`));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const owner = Identity.generate();
  await writeFile(join(dir, 'policy.json'), JSON.stringify(allowAll(owner)));
  const rv = await startProc(['rendezvous', '--port', '0'], /ferry rendezvous ready on (\S+):(\d+) /);
  const rvAddr = `${rv.ready[1]}:${rv.ready[2]}`;
  return {
    dir,
    rv,
    rvAddr,
    async host(name, fault) {
      const data = join(dir, name);
      const env = fault === undefined ? baseEnv() : { ...baseEnv(), FERRY_TEST_FAULT: fault };
      const p = await startProc(['host', '--data-dir', data, '--policy', join(dir, 'policy.json'), '--rendezvous', rvAddr, '--verbose'], /^ferry host ready: /m, env);
      const id = (JSON.parse(await readFile(join(data, 'host.json'), 'utf8')) as { host: string }).host;
      return Object.assign(p, { data, id });
    },
    async agent(name, t) {
      const agent = Identity.generate();
      const code = fixture(name);
      await writeFile(join(dir, `${t}.mjs`), code);
      await writeFile(join(dir, `${t}.cred`), credentialToText(issueCredential(owner, { agent, code, rights: { listen: true, connect: '*' } })) + '\n');
      await writeFile(join(dir, `${t}.key`), agent.seed().toString('hex') + '\n', { mode: 0o600 });
      return { id: agent.id, args: [join(dir, `${t}.mjs`), '--credential', join(dir, `${t}.cred`), '--agent-key', join(dir, `${t}.key`)] };
    },
    async launch(agent, data, state) {
      const r = await ferry(['launch', ...agent.args, '--state', JSON.stringify(state), '--data-dir', data]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trim(), `launched ${agent.id}`);
    },
    async lookupHost(agent) {
      const client = await RendezvousClient.connect({ server: rvAddr });
      try {
        return (await client.lookup(agent))?.hostId;
      } finally {
        client.close();
      }
    },
  };
}

const FROZEN = (name: string): RegExp => new RegExp(`^ferry host fault: frozen at ${name} \\(pid \\d+\\)$`, 'm');

test('destination host killed mid-migration, before it commits: rolled back, the stream runs on at the source, a later move commits', async (t) => {
  // Long enough (~12 s at the writer's pace, 0.5 MiB/s) that the rollback and the later move both land
  // mid-stream even on a loaded machine (a CI run saw 5.5 s from the first verified bytes to the rollback).
  const TOTAL = 6 * 1024 * 1024;
  const w = await world('dest');
  const [a, b, c, d] = await Promise.all([w.host('a'), w.host('b'), w.host('c', 'freeze-destination-before-commit'), w.host('d')]);
  assert.match(c.err(), /TEST FAULT INJECTION ON \(FERRY_TEST_FAULT=freeze-destination-before-commit\)/);
  const hosts = [a, b, c, d];
  const verifier = await w.agent('verifier.mjs', 'verifier');
  const writer = await w.agent('paced-writer.mjs', 'writer');
  await w.launch(verifier, a.data, { hold: true });
  await w.launch(writer, b.data, { peer: verifier.id, total: TOTAL, chunk: 4096, everyMs: 8, hold: true });
  await waitLog(hosts, /^verifier verified=(\d+)/);

  // Move the writer B -> C; C freezes with the whole checkpoint in hand, and is killed there.
  const migrating = ferry(['migrate', writer.id, c.data, '--data-dir', b.data]);
  await waitFor(() => FROZEN('freeze-destination-before-commit').exec(c.out()), 10_000, () => `destination never froze; stderr: ${c.err().slice(-2000)}`, c.child);
  assert.ok(!/agent_attached/.test(c.err()), 'the destination had not committed when it froze');
  await kill(c);
  const m1 = await migrating;
  assert.notEqual(m1.code, 0, m1.out);
  assert.match(m1.err, /^ferry: FERRY_ERR_MIGRATION_ROLLED_BACK: .*\n  cause: FERRY_ERR_[A-Z_]+: /m);
  assert.doesNotMatch(m1.out, /migrated/);
  assert.deepEqual(await lsIds(b.data), [writer.id], 'the writer runs on at the source');
  assert.equal(await w.lookupHost(writer.id), b.id, 'and is registered there');

  // The stream goes on from the source.
  const atRollback = verifiedSoFar(hosts);
  assert.ok(atRollback < TOTAL - 1024 * 1024, `the rollback happened mid-stream (verified ${atRollback} of ${TOTAL})`);
  await waitLog(hosts, /^verifier verified=(\d+)/, 10_000, (m) => Number(m[1]) >= atRollback + 262144);

  // A later migration to a live host commits, mid-stream.
  const m2 = await ferry(['migrate', writer.id, d.data, '--data-dir', b.data]);
  assert.equal(m2.code, 0, m2.err);
  const resumedAt = Number((await waitLog(hosts, /^writer run=2 sent=(\d+)$/))[1]);
  assert.ok(resumedAt > 0 && resumedAt < TOTAL, `writer moved mid-stream (resumed at ${resumedAt} of ${TOTAL})`);
  t.diagnostic(`rolled back with ${atRollback} of ${TOTAL} bytes verified; the writer resumed at D at ${resumedAt}`);

  const done = await waitLog(hosts, /^verifier done verified=(\d+) mismatches=(\d+) runs=(\d+)$/, 30_000);
  assert.deepEqual([Number(done[1]), Number(done[2]), Number(done[3])], [TOTAL, 0, 1], 'every byte verified exactly once, no mismatch');
  const wdone = await waitLog(hosts, /^writer done sent=(\d+) runs=(\d+)$/);
  assert.deepEqual([Number(wdone[1]), Number(wdone[2])], [TOTAL, 2], 'the writer ran at the source (launch) and at D (one landing), never at C');
  assert.ok(!agentLogs(hosts).some((t) => /mismatch at|socket error/.test(t)), agentLogs(hosts).join('\n'));
  assert.deepEqual(await lsIds(b.data), []);
  assert.deepEqual(await lsIds(d.data), [writer.id]);
  assert.deepEqual(await lsIds(a.data), [verifier.id]);
  assert.equal(await w.lookupHost(writer.id), d.id);

  for (const h of [a, b, d]) assert.equal(await stop(h), 0, h.err().slice(-2000));
  assert.equal(await stop(w.rv), 0, w.rv.err());
});

test('source host killed right after the destination committed: the agent lives at the destination, the stream completes exactly once', async (t) => {
  const TOTAL = 4 * 1024 * 1024;
  const w = await world('source');
  const [a, b, c] = await Promise.all([w.host('a', 'freeze-source-after-commit'), w.host('b'), w.host('c')]);
  const hosts = [a, b, c];
  const verifier = await w.agent('verifier.mjs', 'verifier');
  const writer = await w.agent('paced-writer.mjs', 'writer');
  await w.launch(verifier, a.data, { hold: true });
  await w.launch(writer, b.data, { peer: verifier.id, total: TOTAL, chunk: 8192, everyMs: 8, hold: true });
  await waitLog(hosts, /^verifier verified=(\d+)/);

  // Move the verifier A -> C; A freezes as COMMITTED reaches it, and is killed there.
  const migrating = ferry(['migrate', verifier.id, c.data, '--data-dir', a.data]);
  await waitFor(() => FROZEN('freeze-source-after-commit').exec(a.out()), 10_000, () => `source never froze; stderr: ${a.err().slice(-2000)}`, a.child);
  await kill(a);
  const m = await migrating;
  assert.notEqual(m.code, 0, 'the source died before it could answer the operator');
  assert.doesNotMatch(m.out, /migrated/);

  assert.deepEqual(await lsIds(c.data), [verifier.id], 'the verifier lives at the destination');
  assert.equal(await w.lookupHost(verifier.id), c.id, 'and is registered there');
  const landedAt = Number((await waitLog(hosts, /^verifier run=2 verified=(\d+) mismatches=0$/))[1]);
  assert.ok(landedAt > 0 && landedAt < TOTAL, `the verifier moved mid-stream (had verified ${landedAt} of ${TOTAL})`);
  t.diagnostic(`the verifier landed at C with ${landedAt} of ${TOTAL} bytes verified`);

  const done = await waitLog(hosts, /^verifier done verified=(\d+) mismatches=(\d+) runs=(\d+)$/, 15_000);
  assert.deepEqual([Number(done[1]), Number(done[2]), Number(done[3])], [TOTAL, 0, 2], 'every byte verified exactly once, no mismatch');
  const wdone = await waitLog(hosts, /^writer done sent=(\d+) runs=(\d+)$/);
  assert.deepEqual([Number(wdone[1]), Number(wdone[2])], [TOTAL, 1]);
  assert.ok(!agentLogs(hosts).some((t) => /mismatch at|socket error/.test(t)), agentLogs(hosts).join('\n'));
  assert.deepEqual(await lsIds(c.data), [verifier.id]);
  assert.deepEqual(await lsIds(b.data), [writer.id]);

  for (const h of [b, c]) assert.equal(await stop(h), 0, h.err().slice(-2000));
  assert.equal(await stop(w.rv), 0, w.rv.err());
});
