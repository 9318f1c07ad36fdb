// Scenario: `ferry migrate AGENT HOST_ID`. Two host processes share a rendezvous (the first
// embeds it); each registers its own locator under its id at start. An echo agent launched on A
// is moved with nothing but B's id, which B printed in its ready line, and `ferry ls` then lists
// it on B only; an id no host registered is refused with FERRY_ERR_UNKNOWN_HOST.
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
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0)) await f();
});

const HOST_READY = /^ferry host ready: id=([0-9a-f]{32}) /m;

test('ferry migrate AGENT HOST_ID finds the host through the rendezvous', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-hostid-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const owner = Identity.generate();
  await writeFile(join(dir, 'policy.json'), JSON.stringify(allowAll(owner)));
  const [a, b] = [join(dir, 'a'), join(dir, 'b')];
  const hostA = await procs.start(['host', '--data-dir', a, '--policy', join(dir, 'policy.json')], HOST_READY);
  const factsA = JSON.parse(await readFile(join(a, 'host.json'), 'utf8')) as { rendezvous: string };
  const hostB = await procs.start(['host', '--data-dir', b, '--policy', join(dir, 'policy.json'), '--rendezvous', factsA.rendezvous], HOST_READY);
  const idB = HOST_READY.exec(hostB.out())![1]!;

  const agent = Identity.generate();
  const code = fixture('echo.mjs');
  await writeFile(join(dir, 'echo.mjs'), code);
  await writeFile(join(dir, 'echo.cred'), credentialToText(issueCredential(owner, { agent, code, rights: { listen: true, connect: '*' } })));
  await writeFile(join(dir, 'echo.key'), agent.seed().toString('hex'));
  const launched = await procs.run(['launch', join(dir, 'echo.mjs'), '--credential', join(dir, 'echo.cred'), '--agent-key', join(dir, 'echo.key'), '--data-dir', a]);
  assert.equal(launched.code, 0, launched.err);

  const unknown = await procs.run(['migrate', agent.id, Identity.generate().id, '--data-dir', a]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /FERRY_ERR_UNKNOWN_HOST/, unknown.err);
  assert.deepEqual(await procs.lsIds(a), [agent.id]);

  // B registers itself once the rendezvous answered, just after its ready line.
  let moved = await procs.run(['migrate', agent.id, idB, '--data-dir', a]);
  for (const end = Date.now() + 10_000; moved.code !== 0 && /FERRY_ERR_UNKNOWN_HOST/.test(moved.err) && Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, 100));
    moved = await procs.run(['migrate', agent.id, idB, '--data-dir', a]);
  }
  assert.equal(moved.code, 0, `${moved.err}\n${hostB.out()}\n${hostB.err()}`);
  assert.match(moved.out, new RegExp(`^migrated ${agent.id} to host ${idB} in `, 'm'));
  assert.deepEqual(await procs.lsIds(a), []);
  assert.deepEqual(await procs.lsIds(b), [agent.id]);

  assert.equal(await stop(hostB), 0);
  assert.equal(await stop(hostA), 0);
});
