// Scenario: one redis-server with AOF on (started here), two `ferry rendezvous --store redis://…`
// processes over it, three `ferry host --rendezvous A,B` processes. A paced writer streams to a
// verifier and is moved once (b → c). Then redis-server is stopped (SIGTERM) while the stream
// runs: a move of the writer (c → a) is refused with FERRY_ERR_MIGRATION_ROLLED_BACK caused by
// FERRY_ERR_DIRECTORY_UNAVAILABLE, and the writer runs on at c. redis-server is started again on
// the same port and directory: both nodes serve every registration made before the stop (epochs
// included), the same move now commits, and the verifier checks every byte exactly once.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCredential } from '../../src/agent/index.js';
import { credentialToText } from '../../src/host/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { RendezvousClient, type LocationEntry } from '../../src/location/index.js';
import { startRedisServer, type RedisServerHandle } from '../../src/testing/index.js';
import { allowAll, fixture, sleep } from '../helpers/agents.js';
import { Processes, agentLogs, stop, waitLog, type Proc } from '../helpers/processes.js';
import { codeOf } from '../helpers/harness.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0).reverse()) await f();
});

// Bounded: a hang fails the file instead of stalling the run.
test('Redis stopped and restarted (AOF) during moves: earlier registrations survive, a move during the outage rolls back with DIRECTORY_UNAVAILABLE and commits after', { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-redis-outage-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const redis: RedisServerHandle = await startRedisServer({ appendonly: true });
  cleanups.push(() => redis.destroy());
  const owner = Identity.generate();
  await writeFile(join(dir, 'policy.json'), JSON.stringify(allowAll(owner)));
  const agentFiles = async (name: string, tag: string): Promise<{ id: AgentId; args: string[] }> => {
    const agent = Identity.generate();
    const code = fixture(name);
    await writeFile(join(dir, `${tag}.mjs`), code);
    await writeFile(join(dir, `${tag}.cred`), credentialToText(issueCredential(owner, { agent, code, rights: { listen: true, connect: '*' } })) + '\n');
    await writeFile(join(dir, `${tag}.key`), agent.seed().toString('hex') + '\n', { mode: 0o600 });
    return { id: agent.id, args: [join(dir, `${tag}.mjs`), '--credential', join(dir, `${tag}.cred`), '--agent-key', join(dir, `${tag}.key`)] };
  };

  const node = (): Promise<Proc> => procs.start(['rendezvous', '--port', '0', '--store', redis.url], /ferry rendezvous ready on (\S+):(\d+) /);
  const nodes = [await node(), await node()];
  const addrs = nodes.map((n) => `${n.ready[1]}:${n.ready[2]}`);
  const [a, b, c] = ['a', 'b', 'c'].map((x) => join(dir, x)) as [string, string, string];
  const host = (data: string): Promise<Proc> => procs.start(['host', '--data-dir', data, '--policy', join(dir, 'policy.json'), '--rendezvous', addrs.join(','), '--verbose'], /^ferry host ready: /m);
  const hosts = await Promise.all([host(a), host(b), host(c)]);
  const hostIds = await Promise.all([a, b, c].map(async (x) => (JSON.parse(await readFile(join(x, 'host.json'), 'utf8')) as { host: string }).host));

  const total = 4 * 1024 * 1024;
  const verifier = await agentFiles('verifier.mjs', 'verifier');
  const writer = await agentFiles('paced-writer.mjs', 'writer');
  const launch = async (agent: { id: AgentId; args: string[] }, data: string, state: unknown): Promise<void> => {
    const r = await procs.run(['launch', ...agent.args, '--state', JSON.stringify(state), '--data-dir', data]);
    assert.equal(r.code, 0, r.err);
  };
  await launch(verifier, a, { hold: true });
  await launch(writer, b, { peer: verifier.id, total, chunk: 4096, everyMs: 20, hold: true });
  await waitLog(hosts, /^verifier verified=(\d+)/);
  const m1 = await procs.run(['migrate', writer.id, c, '--data-dir', b]);
  assert.equal(m1.code, 0, m1.err);
  await waitLog(hosts, /^writer run=2 sent=(\d+)$/, 15_000);

  const lookups = async (): Promise<(LocationEntry | undefined)[]> => {
    const out: (LocationEntry | undefined)[] = [];
    for (const addr of addrs) {
      const client = await RendezvousClient.connect({ server: addr, cacheTtlMs: 0 });
      try {
        out.push(await client.lookup(writer.id), await client.lookup(verifier.id));
      } finally {
        client.close();
      }
    }
    return out;
  };
  const before = await lookups();

  await redis.stop();
  // Longer than a host's lookup cache (LOCATION_CACHE_TTL_MS), so the move asks the directory.
  await sleep(1200);
  const refused = await procs.run(['migrate', writer.id, a, '--data-dir', c]);
  assert.notEqual(refused.code, 0, refused.out);
  assert.match(refused.err, /^ferry: FERRY_ERR_MIGRATION_ROLLED_BACK: .*\n  cause: FERRY_ERR_DIRECTORY_UNAVAILABLE: /m);
  assert.deepEqual(await procs.lsIds(c), [writer.id], 'the writer runs on at c');
  assert.deepEqual(await procs.lsIds(a), [verifier.id]);

  await redis.restart();
  // Both nodes reconnect on their own; the entries written before the stop are all there.
  // Until they have, a lookup is refused DIRECTORY_UNAVAILABLE (or goes unanswered); nothing else.
  let after: (LocationEntry | undefined)[] | undefined;
  let last = '';
  for (let i = 0; i < 100 && !after; i++) {
    try {
      after = await lookups();
    } catch (err) {
      last = codeOf(err);
      if (last !== 'FERRY_ERR_DIRECTORY_UNAVAILABLE' && last !== 'FERRY_ERR_CONTROL_TIMEOUT') throw err;
      await sleep(100);
    }
  }
  assert.ok(after, `lookups still refused 10 s after the restart (${last})`);
  assert.deepEqual(after.map((e) => e && [e.hostId, e.epoch]), before.map((e) => e && [e.hostId, e.epoch]));
  assert.deepEqual(after.map((e) => e?.hostId), [hostIds[2], hostIds[0], hostIds[2], hostIds[0]]);

  const m2 = await procs.run(['migrate', writer.id, a, '--data-dir', c]);
  assert.equal(m2.code, 0, m2.err);
  await waitLog(hosts, /^writer run=3 sent=(\d+)$/, 15_000);
  const done = await waitLog(hosts, /^verifier done verified=(\d+) mismatches=(\d+) runs=(\d+)$/, 30_000);
  assert.deepEqual([Number(done[1]), Number(done[2])], [total, 0], 'every byte verified exactly once');
  await waitLog(hosts, /^writer done sent=(\d+) runs=(\d+)$/);
  // The stream ended once, after the last landing (launch and two landings: the refused move ran nothing).
  assert.deepEqual(agentLogs(hosts).filter((t) => t.startsWith('writer done')), [`writer done sent=${total} runs=3`]);
  assert.ok(!agentLogs(hosts).some((t) => /mismatch at|socket error/.test(t)), agentLogs(hosts).join('\n'));
  assert.deepEqual(await procs.lsIds(a), [verifier.id, writer.id].sort());
  assert.deepEqual(await procs.lsIds(c), []);
  assert.equal((await lookups())[0]?.epoch, 3);
  for (const h of hosts) assert.equal(await stop(h), 0, h.err().slice(-2000));
  for (const n of nodes) assert.equal(await stop(n), 0, n.err());
});
