// Scenario: hosts with their own addresses. Three network namespaces on one bridge (NetnsLab); a
// `ferry rendezvous` in namespace 0 bound to that namespace's address, and one `ferry host
// --policy --ip ADDR --rendezvous NS0:PORT` per namespace. Operator commands run inside the
// host's namespace (its admin endpoint is on that namespace's 127.0.0.1). A verifier agent
// (ns 0) and a paced writer streaming to it (ns 1) are launched with credentials; while the stream
// runs the writer moves to ns 2 and then the verifier to ns 1, and the verifier ends with exactly
// the bytes written, no mismatch. `ferry ls --json` shows each host on its own address. Needs
// root; without it the test asserts that it is not root (so it never skips silently).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentId } from '../../src/identity/index.js';
import { agentLogTexts, sleep } from '../helpers/agents.js';
import { launchDir } from '../helpers/launch-files.js';
import { lineMatching, netnsAvailable, NetnsLab } from '../helpers/netns.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** ctx.log texts in the hosts' --verbose stderr. */
function agentLogs(errs: string[]): string[] {
  return agentLogTexts(errs);
}

test('hosts in their own network namespaces: stream across two moves through a rendezvous in ns 0', async () => {
  if (!netnsAvailable()) {
    assert.notEqual(process.getuid?.(), 0, 'netns unavailable although root');
    return;
  }
  const work = await launchDir('ferry-netns-');
  const { dir } = work;
  const lab = NetnsLab.create(3);
  const hosts: ChildProcess[] = [];
  try {
    const agentFiles = async (name: string, tag: string): Promise<{ id: AgentId; args: string[] }> => {
      const f = await work.agentFiles(name, { name: tag, rights: { listen: true, connect: '*' } });
      return { id: f.agent.id, args: f.args };
    };
    const ferry = async (i: number, args: string[]): Promise<{ code: number; out: string; err: string }> => {
      const r = await lab.runNode(i, [MAIN, ...args]);
      return { code: r.code, out: r.stdout, err: r.stderr };
    };

    const rv = lab.spawnNode(0, [MAIN, 'rendezvous', '--host', lab.ips[0]!, '--port', '0']);
    hosts.push(rv);
    const rvAddr = (await lineMatching(rv, /^ferry rendezvous ready on (\S+:\d+) /))[1]!;
    assert.ok(rvAddr.startsWith(`${lab.ips[0]}:`), rvAddr);

    const data = [0, 1, 2].map((i) => join(dir, `h${i}`));
    const errs = ['', '', ''];
    await Promise.all(
      [0, 1, 2].map(async (i) => {
        const h = lab.spawnNode(i, [MAIN, 'host', '--data-dir', data[i]!, '--ip', lab.ips[i]!, '--rendezvous', rvAddr, '--policy', work.policy, '--verbose']);
        hosts.push(h);
        h.stderr!.on('data', (c: Buffer) => (errs[i] += c.toString()));
        const m = await lineMatching(h, /^ferry host ready: .* control=(\S+) redirector=(\S+) /);
        assert.equal(m[1], `${lab.ips[i]}:${m[1]!.split(':')[1]}`);
        assert.ok(m[2]!.startsWith(`${lab.ips[i]}:`), m[2]);
      }),
    );
    const waitLog = async (re: RegExp, ms = 10_000, ok: (m: RegExpExecArray) => boolean = () => true): Promise<RegExpExecArray> => {
      const end = Date.now() + ms;
      for (;;) {
        for (const t of agentLogs(errs)) {
          const m = re.exec(t);
          if (m && ok(m)) return m;
        }
        if (Date.now() > end) throw new Error(`no agent log matching ${re} within ${ms} ms; got:\n${agentLogs(errs).join('\n')}`);
        await sleep(20);
      }
    };
    const ls = async (i: number): Promise<{ redirector: string; agents: { id: string }[] }> => {
      const r = await ferry(i, ['ls', '--json', '--data-dir', data[i]!]);
      assert.equal(r.code, 0, r.err);
      return JSON.parse(r.out) as { redirector: string; agents: { id: string }[] };
    };

    // ~12 s at the writer's pace (0.5 MiB/s): both moves land mid-stream on a loaded machine too
    // (at 1 MiB/s and 2 MiB, one run saw the stream end before the first move).
    const total = 6 * 1024 * 1024;
    const verifier = await agentFiles('verifier.mjs', 'verifier');
    const writer = await agentFiles('paced-writer.mjs', 'writer');
    const launch = async (i: number, agent: { id: AgentId; args: string[] }, state: unknown): Promise<void> => {
      const r = await ferry(i, ['launch', ...agent.args, '--state', JSON.stringify(state), '--data-dir', data[i]!]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trim(), `launched ${agent.id}`);
    };
    await launch(0, verifier, { hold: true });
    await launch(1, writer, { peer: verifier.id, total, chunk: 4096, everyMs: 8, hold: true });

    await waitLog(/^verifier verified=(\d+)/);
    const m1 = await ferry(1, ['migrate', writer.id, data[2]!, '--data-dir', data[1]!]);
    assert.equal(m1.code, 0, m1.err);
    assert.match(m1.out, new RegExp(`^migrated ${writer.id} to ${lab.ips[2]!.replace(/\./g, '\\.')}:\\d+`));
    const resumedAt = Number((await waitLog(/^writer run=2 sent=(\d+)$/))[1]);
    assert.ok(resumedAt > 0 && resumedAt < total, `writer moved mid-stream (resumed at ${resumedAt} of ${total})`);
    await waitLog(/^verifier verified=(\d+)/, 10_000, (m) => Number(m[1]) > resumedAt);
    const m2 = await ferry(0, ['migrate', verifier.id, data[1]!, '--data-dir', data[0]!]);
    assert.equal(m2.code, 0, m2.err);
    const verifiedAt = Number((await waitLog(/^verifier run=2 verified=(\d+) mismatches=0$/))[1]);
    assert.ok(verifiedAt > 0 && verifiedAt < total, `verifier moved mid-stream (had verified ${verifiedAt} of ${total})`);

    const done = await waitLog(/^verifier done verified=(\d+) mismatches=(\d+) runs=(\d+)$/, 30_000);
    assert.deepEqual([Number(done[1]), Number(done[2]), Number(done[3])], [total, 0, 2], 'every byte verified exactly once, no mismatch');
    const wdone = await waitLog(/^writer done sent=(\d+) runs=(\d+)$/);
    assert.deepEqual([Number(wdone[1]), Number(wdone[2])], [total, 2]);
    assert.ok(!agentLogs(errs).some((t) => /mismatch at|socket error/.test(t)), agentLogs(errs).join('\n'));

    const status = await Promise.all([0, 1, 2].map(ls));
    status.forEach((s, i) => assert.ok(s.redirector.startsWith(`${lab.ips[i]}:`), s.redirector));
    assert.deepEqual(
      status.map((s) => s.agents.map((x) => x.id)),
      [[], [verifier.id], [writer.id]],
    );

    for (const h of hosts.slice(1).concat(hosts.slice(0, 1))) {
      const exited = once(h, 'exit') as Promise<[number | null]>;
      h.kill('SIGTERM');
      // `ip netns exec` execs node, so the signal reaches it and the exit status is node's.
      assert.equal((await exited)[0], 0);
    }
  } finally {
    for (const h of hosts) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
    lab.destroy();
    await work.remove();
  }
});
