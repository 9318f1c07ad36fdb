// Scenario: a stranger migrates an agent without code into a `ferry host` (PROTOCOL.md §6.7,
// "Who may migrate here"). Any host key can open a migration channel, and only agents with code
// pass an admission (owner credential, host policy). The stranger runs two hosts of its own (the
// Ferry library), one of its bare agents holding a connection to another, and migrates that agent
// to the `ferry host`. Before, the host took it: it registered the stranger's agent as running
// there and resumed its checkpointed connection towards whatever address the checkpoint named (a
// reflector: that address gets RES until the reconnect limit), and every such channel could make
// it buffer up to MAX_CHECKPOINT_BYTES. Now the DELEGATE step is answered ABORT FERRY_ERR_REFUSED,
// logged once: the move rolls back at the stranger, nothing lands or registers at the host, and
// the stranger's stream goes on where it was.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Host } from '../../src/host/index.js';
import type { HostId } from '../../src/identity/index.js';
import { RendezvousClient } from '../../src/location/index.js';
import { isFerryError } from '../../src/util/index.js';
import { Link } from '../helpers/attacker.js';
import { launchDir } from '../helpers/launch-files.js';
import { Processes, stop } from '../helpers/processes.js';
import { startRendezvousNodes } from '../helpers/rendezvous.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  procs.killAll();
});

const HOST_READY = /^ferry host ready: id=([0-9a-f]{32}) control=\S+ redirector=(\S+):(\d+) /m;

test('a ferry host refuses an agent without code migrated by a stranger host', { timeout: 60_000 }, async () => {
  const work = await launchDir('ferry-stranger-mig-');
  cleanups.push(() => work.remove());
  const { addresses: [rendezvous] } = await startRendezvousNodes(procs, 1);
  const target = await procs.start(['host', '--data-dir', join(work.dir, 'h'), '--policy', work.policy, '--rendezvous', rendezvous!], HOST_READY);
  const [, hostId, ip, port] = target.ready as unknown as [string, string, string, string];

  // The stranger's own hosts and agents.
  const stranger: Host[] = [];
  for (let i = 0; i < 2; i++) {
    const location = await RendezvousClient.connect({ server: rendezvous!, cacheTtlMs: 0 });
    cleanups.push(() => location.close());
    const h = await Host.start({ location, name: `s${i}` });
    cleanups.push(() => h.close());
    stranger.push(h);
  }
  const [s0, s1] = stranger as [Host, Host];
  const mover = await s0.addAgent();
  const peer = await s1.addAgent();
  const link = await Link.open(s0, mover.id, s1, peer.id, 91);
  await link.exchange(20_000, 'before');

  await assert.rejects(s0.migrateAgent(mover.id, { ip, redirectorPort: Number(port), hostId: hostId as unknown as HostId }), (err: unknown) => {
    assert.ok(isFerryError(err, 'FERRY_ERR_MIGRATION_ROLLED_BACK'), String(err));
    assert.ok(isFerryError((err as Error).cause, 'FERRY_ERR_REFUSED'), `cause: ${String((err as Error).cause)}`);
    return true;
  });
  // Nothing landed or registered there: the agent and its stream stay with the stranger.
  const probe = await RendezvousClient.connect({ server: rendezvous!, cacheTtlMs: 0 });
  cleanups.push(() => probe.close());
  assert.equal((await probe.lookup(mover.id))?.hostId, s0.id);
  assert.deepEqual(s0.agentIds().includes(mover.id), true);
  await link.exchange(20_000, 'after the refused move');
  assert.equal(await stop(target), 0, target.err());
  assert.equal(target.out().match(/FERRY_ERR_REFUSED/g)?.length ?? 0, 1, `one refusal line:\n${target.out()}`);
});
