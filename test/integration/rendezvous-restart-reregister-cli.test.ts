// Scenario: the rendezvous loses its directory and the hosts tell it again. Two `ferry host`
// processes; an echo agent runs on h1. The directory is lost in one of two ways: a `ferry
// rendezvous` without a snapshot is stopped and started again on the same port, empty; or the
// Redis under a `ferry rendezvous --store redis://…` is flushed (FLUSHALL). Without restarting
// anything else, h1 registers the echo agent again and h2 its own host entry (each finds its
// entry unknown on its next directory check), so an agent launched on h2 connects to the echo
// agent by id, and `ferry migrate` moves the echo agent to h2 by host id alone.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { issueCredential } from '../../src/agent/index.js';
import { credentialToText } from '../../src/host/index.js';
import { Identity } from '../../src/identity/index.js';
import { startRedisServer } from '../../src/testing/index.js';
import { allowAll, fixture } from '../helpers/agents.js';
import { Processes, freeUdpPort, poll, stop, type Proc } from '../helpers/processes.js';

const procs = new Processes();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  procs.killAll();
  for (const f of cleanups.splice(0).reverse()) await f();
});

const HOST_READY = /^ferry host ready: id=([0-9a-f]{32}) /m;
const RV_READY = /ferry rendezvous ready on (\S+):(\d+) \((\d+) agents/;

/**
 * Start two hosts on the rendezvous `rvArgs` starts, run an echo agent on h1, have `lose` lose the
 * directory, then check that the hosts registered again and that connect and migrate by id work.
 */
async function story(rvArgs: string[], lose: (rv: Proc) => Promise<Proc>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-rv-lost-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const owner = Identity.generate();
  await writeFile(join(dir, 'policy.json'), JSON.stringify(allowAll(owner)));
  const files = async (name: string, fixtureName: string): Promise<{ agent: Identity; args: string[] }> => {
    const agent = Identity.generate();
    const code = fixture(fixtureName);
    await writeFile(join(dir, `${name}.mjs`), code);
    await writeFile(join(dir, `${name}.cred`), credentialToText(issueCredential(owner, { agent, code, rights: { listen: true, connect: '*' } })));
    await writeFile(join(dir, `${name}.key`), agent.seed().toString('hex'));
    return { agent, args: [join(dir, `${name}.mjs`), '--credential', join(dir, `${name}.cred`), '--agent-key', join(dir, `${name}.key`)] };
  };
  const echo = await files('echo', 'echo.mjs');
  const caller = await files('caller', 'initiator.mjs');

  const rv = await procs.start(['rendezvous', ...rvArgs], RV_READY);
  const rendezvous = `${rv.ready[1]}:${rv.ready[2]}`;
  const [d1, d2] = [join(dir, 'h1'), join(dir, 'h2')];
  const start = (d: string): ReturnType<Processes['start']> => procs.start(['host', '--data-dir', d, '--policy', join(dir, 'policy.json'), '--rendezvous', rendezvous], HOST_READY);
  const h1 = await start(d1);
  const h2 = await start(d2);
  const id2 = h2.ready[1]!;
  const launched = await procs.run(['launch', ...echo.args, '--data-dir', d1]);
  assert.equal(launched.code, 0, launched.err);

  const rvAfter = await lose(rv);

  await poll(() => new RegExp(`agent ${echo.agent.id} registered again at epoch 1`).exec(h1.out()), 30_000, () => `h1 never registered the echo agent again:\n${h1.out()}`);
  await poll(() => /this host registered again/.exec(h2.out()), 30_000, () => `h2 never registered itself again:\n${h2.out()}`);

  // Connect by id: the caller on h2 finds the echo agent on h1 through the rendezvous.
  const called = await procs.run(['launch', ...caller.args, '--state', JSON.stringify({ peer: echo.agent.id }), '--data-dir', d2]);
  assert.equal(called.code, 0, called.err);
  await poll(() => new RegExp(`initiator run=1 peer=${echo.agent.id} initiator=true`).exec(h2.out()), 20_000, () => `the caller never connected to the echo agent:\n${h2.out()}`);

  // Migrate by host id: h2's own entry is back too.
  const moved = await procs.run(['migrate', echo.agent.id, id2, '--data-dir', d1]);
  assert.equal(moved.code, 0, `${moved.err}\n${h2.out()}`);
  assert.match(moved.out, new RegExp(`^migrated ${echo.agent.id} to host ${id2} in `, 'm'));

  for (const p of [h2, h1, rvAfter]) assert.equal(await stop(p), 0, p.err());
}

test('a rendezvous restarted without its snapshot is told again what the hosts run; connect and migrate by id work', { timeout: 120_000 }, async () => {
  const port = String(await freeUdpPort());
  await story(['--port', port], async (rv) => {
    assert.equal(await stop(rv), 0, rv.err());
    const again = await procs.start(['rendezvous', '--port', port], RV_READY);
    assert.equal(again.ready[3], '0', 'the restarted rendezvous starts empty');
    return again;
  });
});

test('a Redis flushed under the rendezvous is told again what the hosts run; connect and migrate by id work', { timeout: 120_000 }, async () => {
  const redis = await startRedisServer();
  cleanups.push(() => redis.destroy());
  await story(['--port', '0', '--store', redis.url], async (rv) => {
    const admin = createClient({ url: redis.url });
    await admin.connect();
    try {
      assert.notEqual(await admin.sendCommand(['DBSIZE']), 0);
      await admin.sendCommand(['FLUSHALL']);
    } finally {
      await admin.close();
    }
    return rv;
  });
});
