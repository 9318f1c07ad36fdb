// Scenario: one redis-server (started here), two `ferry rendezvous --store redis://…` processes
// over it, three `ferry host --rendezvous A,B` processes. A paced writer streams to a verifier;
// the writer is moved around the ring of hosts (b → c → a → b) while it streams, and rendezvous
// node A, which every host uses first, is SIGKILLed right after the first move. The ring
// completes exactly once: every move commits (the hosts fail over to node B, whose directory is
// the same), the writer ran exactly four times (launch and three landings) and is listed on one
// host only, the verifier checked every byte exactly once, and node B locates both agents.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCredential } from '../../src/agent/index.js';
import { credentialToText } from '../../src/host/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { RendezvousClient } from '../../src/location/index.js';
import { startRedisServer, type RedisServerHandle } from '../../src/testing/index.js';
import { allowAll, fixture } from '../helpers/agents.js';
import { Processes, agentLogs, kill, stop, waitLog, type Proc } from '../helpers/processes.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0).reverse()) await f();
});

// Bounded: a hang fails the file instead of stalling the run.
test('two rendezvous nodes over one Redis: one is killed during a ring of moves, the ring completes exactly once', { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-rv-kill-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const redis: RedisServerHandle = await startRedisServer();
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

  const node = (): Promise<Proc> => procs.start(['rendezvous', '--port', '0', '--store', redis.url], /ferry rendezvous ready on (\S+):(\d+) \((\d+) agents, store /);
  const nodeA = await node();
  const nodeB = await node();
  const [addrA, addrB] = [nodeA, nodeB].map((n) => `${n.ready[1]}:${n.ready[2]}`) as [string, string];
  const [a, b, c] = ['a', 'b', 'c'].map((x) => join(dir, x)) as [string, string, string];
  const host = (data: string): Promise<Proc> => procs.start(['host', '--data-dir', data, '--policy', join(dir, 'policy.json'), '--rendezvous', `${addrA},${addrB}`, '--verbose'], /^ferry host ready: /m);
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

  const move = async (from: string, to: string, run: number): Promise<void> => {
    const m = await procs.run(['migrate', writer.id, to, '--data-dir', from]);
    assert.equal(m.code, 0, `move to run ${run}: ${m.err}`);
    const at = Number((await waitLog(hosts, new RegExp(`^writer run=${run} sent=(\\d+)$`), 15_000))[1]);
    assert.ok(at > 0 && at < total, `the writer moved mid-stream (run ${run} resumed at ${at} of ${total})`);
  };
  await move(b, c, 2);
  // Node A dies; every host has it first in its list.
  await kill(nodeA);
  await move(c, a, 3);
  await move(a, b, 4);

  const done = await waitLog(hosts, /^verifier done verified=(\d+) mismatches=(\d+) runs=(\d+)$/, 30_000);
  assert.deepEqual([Number(done[1]), Number(done[2]), Number(done[3])], [total, 0, 1], 'every byte verified exactly once');
  await waitLog(hosts, /^writer done sent=(\d+) runs=(\d+)$/);
  // The stream ended once, after the last landing (the writer ran at launch and at each of its three landings, no more).
  assert.deepEqual(agentLogs(hosts).filter((t) => t.startsWith('writer done')), [`writer done sent=${total} runs=4`]);
  assert.ok(!agentLogs(hosts).some((t) => /mismatch at|socket error/.test(t)), agentLogs(hosts).join('\n'));
  assert.deepEqual(await procs.lsIds(a), [verifier.id]);
  assert.deepEqual(await procs.lsIds(b), [writer.id]);
  assert.deepEqual(await procs.lsIds(c), []);
  assert.ok(hosts.some((h) => /location\.rendezvous_failover/.test(h.err())), 'a host failed over to node B');

  const client = await RendezvousClient.connect({ server: addrB, cacheTtlMs: 0 });
  try {
    assert.equal((await client.lookup(writer.id))?.hostId, hostIds[1]);
    assert.equal((await client.lookup(writer.id))?.epoch, 4);
    assert.equal((await client.lookup(verifier.id))?.hostId, hostIds[0]);
  } finally {
    client.close();
  }
  for (const h of hosts) assert.equal(await stop(h), 0, h.err().slice(-2000));
  assert.equal(await stop(nodeB), 0, nodeB.err());
});
