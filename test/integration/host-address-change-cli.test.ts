// Scenario: `ferry host --ip auto` follows its address while an agent's connection carries bytes,
// as a laptop that changes networks. Three network namespaces on one bridge (NetnsLab): a `ferry
// rendezvous` in ns 0; in ns 1 a roaming host (`--ip auto`) running a verifier agent; in ns 2 a
// host with a fixed address running a paced writer that streams to the verifier. Mid-stream ns 1's
// address is removed and another one added on the same link. The roaming host notices (it polls
// its interfaces), says so in one line, re-registers the verifier at the new address, and the
// writer's connection resumes towards it: the verifier ends with exactly the bytes written, every
// one once and in order, without a move or an error on either side. Needs root; without it the
// test asserts that it is not root (so it never skips silently).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentId } from '../../src/identity/index.js';
import { agentLogTexts } from '../helpers/agents.js';
import { launchDir } from '../helpers/launch-files.js';
import { ChildLines } from '../helpers/child-lines.js';
import { netnsAvailable, NetnsLab } from '../helpers/netns.js';
import { FERRY_MAIN, poll } from '../helpers/processes.js';

/** 4 MiB at 8 KiB every 8 ms (about 1 MiB/s): the change lands mid-stream on a loaded machine too. */
const TOTAL = 4 * 1024 * 1024;

test('ferry host --ip auto: the host changes its address mid-stream; its agent\'s peer resumes to the new one', { timeout: 120_000 }, async () => {
  if (!netnsAvailable()) {
    assert.notEqual(process.getuid?.(), 0, 'netns unavailable although root');
    return;
  }
  const work = await launchDir('ferry-host-roam-');
  const { dir } = work;
  const lab = NetnsLab.create(3);
  const procs: ChildLines[] = [];
  try {
    const agentFiles = async (name: string, tag: string): Promise<{ id: AgentId; args: string[] }> => {
      const f = await work.agentFiles(name, { name: tag, rights: { listen: true, connect: '*' } });
      return { id: f.agent.id, args: f.args };
    };
    const spawn = (i: number, args: string[]): ChildLines => {
      const p = new ChildLines(lab.spawnNode(i, [FERRY_MAIN, ...args]));
      procs.push(p);
      return p;
    };

    const rv = spawn(0, ['rendezvous', '--host', lab.ips[0]!, '--port', '0']);
    const rvAddr = (await rv.wait(/^ferry rendezvous ready on (\S+:\d+) /, 10_000))[1]!;
    const data = [join(dir, 'h1'), join(dir, 'h2')] as const;
    const roaming = spawn(1, ['host', '--data-dir', data[0], '--ip', 'auto', '--rendezvous', rvAddr, '--policy', work.policy, '--verbose']);
    const fixed = spawn(2, ['host', '--data-dir', data[1], '--ip', lab.ips[2]!, '--rendezvous', rvAddr, '--policy', work.policy, '--verbose']);
    const before = lab.ips[1]!;
    const ready = await roaming.wait(/^ferry host ready: .* control=(\S+) redirector=(\S+) .* roaming$/, 10_000);
    assert.ok(ready[1]!.startsWith(`${before}:`) && ready[2]!.startsWith(`${before}:`), `the roaming host names its namespace address: ${ready[0]}`);
    await fixed.wait(/^ferry host ready: /, 10_000);

    const logs = (): string[] => agentLogTexts([roaming.err, fixed.err]);
    const waitLog = (re: RegExp, ms: number): Promise<RegExpExecArray> =>
      poll(
        () => logs().map((t) => re.exec(t)).find((m) => m !== null),
        ms,
        () => `no agent log matching ${re}; got:\n${logs().join('\n')}\nroaming host: ${roaming.err.slice(-1500)}`,
      );
    const launch = async (i: number, agent: { args: string[] }, state: unknown, dataDir: string): Promise<void> => {
      const r = await lab.runNode(i, [FERRY_MAIN, 'launch', ...agent.args, '--state', JSON.stringify(state), '--data-dir', dataDir]);
      assert.equal(r.code, 0, r.stderr);
    };
    const verifier = await agentFiles('verifier.mjs', 'verifier');
    const writer = await agentFiles('paced-writer.mjs', 'writer');
    await launch(1, verifier, { hold: true }, data[0]);
    await launch(2, writer, { peer: verifier.id, total: TOTAL, chunk: 8192, everyMs: 8, hold: true }, data[1]);

    // Mid-stream: 1 MiB verified.
    const verifiedAt = (): number => Math.max(0, ...logs().map((t) => /^verifier verified=(\d+)/.exec(t)).filter((m) => m !== null).map((m) => Number(m[1])));
    await poll(() => (verifiedAt() >= 1024 * 1024 ? true : undefined), 30_000, () => `1 MiB verified before the change:\n${logs().join('\n')}`);
    const after = lab.readdress(1, 60);
    const atChange = verifiedAt();

    const done = await waitLog(/^verifier done verified=(\d+) mismatches=(\d+) runs=(\d+)$/, 60_000);
    assert.deepEqual([Number(done[1]), Number(done[2]), Number(done[3])], [TOTAL, 0, 1], 'every byte verified exactly once, in order, by the agent that never moved');
    const wdone = await waitLog(/^writer done sent=(\d+) runs=(\d+)$/, 10_000);
    assert.deepEqual([Number(wdone[1]), Number(wdone[2])], [TOTAL, 1]);
    assert.ok(atChange < TOTAL, `the change came mid-stream (${atChange} of ${TOTAL} verified)`);
    assert.ok(!logs().some((t) => /mismatch at|socket error/.test(t)), logs().join('\n'));

    // The host noticed (one readable line), and re-registered its agent at the new address.
    assert.deepEqual(roaming.events('address_changed').map((e) => [e.from, e.to]), [[before, after]], roaming.err.slice(-2000));
    assert.equal(roaming.lines.filter((l) => l.includes(` address changed from ${before} to ${after}: `)).length, 1, roaming.lines.join('\n'));
    assert.ok(roaming.events('agent_reregistered').some((e) => e.agent === verifier.id && e.ip === after), roaming.err.slice(-2000));
    // Its operator view names the new address (the old one is gone from ns 1: every byte after the
    // change reached the verifier there).
    const status = await lab.runNode(1, [FERRY_MAIN, 'ls', '--json', '--data-dir', data[0]]);
    assert.equal(status.code, 0, status.stderr);
    assert.ok((JSON.parse(status.stdout) as { redirector: string }).redirector.startsWith(`${after}:`), status.stdout);
    // And so does what it published in its data directory ('ferry migrate --to-dir' reads it).
    const facts = JSON.parse(await readFile(join(data[0]!, 'host.json'), 'utf8')) as { control: string; redirector: string };
    assert.ok(facts.redirector.startsWith(`${after}:`) && facts.control.startsWith(`${after}:`), JSON.stringify(facts));

    for (const p of [procs[1]!, procs[2]!, procs[0]!]) {
      const exited = once(p.child, 'exit') as Promise<[number | null]>;
      p.child.kill('SIGTERM');
      assert.equal((await exited)[0], 0, p.err.slice(-1000));
    }
  } finally {
    lab.destroy();
    await work.remove();
  }
});
