// Scenario: operators run agents with code across processes. Two `ferry host --policy FILE`
// processes share a rendezvous (the first embeds it); `ferry launch echo.mjs --credential FILE
// --agent-key FILE` starts the agent on the first, `ferry migrate` moves it to the second over
// the migration channel, and `ferry ls --json` shows it there with its owner. A credential
// for other code is refused with a typed error and exit 1.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCredential } from '../../src/agent/index.js';
import { credentialToText } from '../../src/host/index.js';
import { Identity } from '../../src/identity/index.js';
import { allowAll, fixture } from '../helpers/agents.js';
import { Processes, stop } from '../helpers/processes.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0).reverse()) await f();
});

const HOST_READY = /^ferry host ready: /m;
const ferry = (args: string[]): Promise<{ code: number | null; out: string; err: string }> => procs.run(args);

test('ferry launch on a host run with --policy, ferry migrate to another host process, ferry ls there', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-launch-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const owner = Identity.generate();
  const agent = Identity.generate();
  const code = fixture('echo.mjs');
  await writeFile(join(dir, 'policy.json'), JSON.stringify(allowAll(owner)));
  await writeFile(join(dir, 'echo.mjs'), code);
  await writeFile(join(dir, 'agent.cred'), credentialToText(issueCredential(owner, { agent, code, rights: { listen: true, connect: '*' } })) + '\n');
  await writeFile(join(dir, 'other.cred'), credentialToText(issueCredential(owner, { agent, code: code + '\n// other', rights: { listen: true } })) + '\n');
  await writeFile(join(dir, 'agent.key'), agent.seed().toString('hex') + '\n', { mode: 0o600 });
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  const hostA = await procs.start(['host', '--data-dir', a, '--policy', join(dir, 'policy.json')], HOST_READY);
  const factsA = JSON.parse(await readFile(join(a, 'host.json'), 'utf8')) as { rendezvous: string };
  const hostB = await procs.start(['host', '--data-dir', b, '--policy', join(dir, 'policy.json'), '--rendezvous', factsA.rendezvous], HOST_READY);

  const refused = await ferry(['launch', join(dir, 'echo.mjs'), '--credential', join(dir, 'other.cred'), '--agent-key', join(dir, 'agent.key'), '--data-dir', a]);
  assert.equal(refused.code, 1, refused.out);
  assert.match(refused.err, /FERRY_ERR_CODE_HASH_MISMATCH/);

  const launched = await ferry(['launch', join(dir, 'echo.mjs'), '--credential', join(dir, 'agent.cred'), '--agent-key', join(dir, 'agent.key'), '--data-dir', a]);
  assert.equal(launched.code, 0, launched.err);
  assert.equal(launched.out.trim(), `launched ${agent.id}`);

  const moved = await ferry(['migrate', agent.id, b, '--data-dir', a]);
  assert.equal(moved.code, 0, moved.err);
  const lsA = JSON.parse((await ferry(['ls', '--json', '--data-dir', a])).out) as { agents: unknown[] };
  assert.deepEqual(lsA.agents, []);
  const lsB = JSON.parse((await ferry(['ls', '--json', '--data-dir', b])).out) as { agents: { id: string; owner?: string }[] };
  assert.deepEqual(
    lsB.agents.map((x) => [x.id, x.owner]),
    [[agent.id, owner.id]],
  );

  for (const h of [hostB, hostA]) assert.equal(await stop(h), 0);
});
