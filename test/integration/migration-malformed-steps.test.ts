// Scenario: a stranger host opens authenticated migration channels to a real host's redirector and
// sends step bodies that are well-framed and sealed but malformed: a DELEGATE with a field the
// protocol does not have, a PEERS naming a connection of an agent it did not delegate, a CONFIRM
// that is not `{}`. Each time the destination answers ABORT with
// FERRY_ERR_MALFORMED_MIGRATION_STEP (nothing is attached or registered), and afterwards it still
// takes a real migration from another host, the stream going on exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { MigrationChannel, type Host } from '../../src/host/index.js';
import { Identity, freshChain, type HostId } from '../../src/identity/index.js';
import { systemClock } from '../../src/util/index.js';
import { MigrationStep, decodeAbortStep, decodeConnectionIdsStep, encodeConfirmStep, encodeDelegateStep, encodePeersStep } from '../../src/wire/index.js';
import { connectedPair, pattern, Reader, startHosts, waitFor } from '../helpers/harness.js';

async function channelTo(h: Host): Promise<MigrationChannel> {
  const sock = connect(h.redirectorPort, h.ip);
  await once(sock, 'connect');
  return MigrationChannel.open(sock, Identity.generate(), systemClock, h.id as HostId);
}

/** The destination's answer must be an ABORT with the malformed-step code. */
async function expectAbort(ch: MigrationChannel, what: string): Promise<void> {
  const { step, payload } = await ch.recv([MigrationStep.ABORT, MigrationStep.CONNECTION_IDS]);
  assert.equal(step, MigrationStep.ABORT, `${what}: the destination answered step ${step}`);
  assert.equal(decodeAbortStep(payload).code, 'FERRY_ERR_MALFORMED_MIGRATION_STEP', what);
  ch.close();
}

test('malformed step bodies are refused with a typed ABORT, and the host migrates on', async () => {
  const net = await startHosts(3);
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const agent = Identity.generate();
    const delegate = encodeDelegateStep({ agents: [{ agent: agent.id, agentKey: agent.publicRaw, epoch: 1, chain: freshChain(agent, h1.identity.publicRaw, 1, Date.now()) }] });

    // 1. DELEGATE with a field the protocol does not have (the old parser ignored it and went on).
    const extra = JSON.parse(delegate.toString()) as { agents: Record<string, unknown>[] };
    extra.agents[0]!.note = 'x';
    let ch = await channelTo(h1);
    ch.send(MigrationStep.DELEGATE, Buffer.from(JSON.stringify(extra)));
    await expectAbort(ch, 'unknown DELEGATE field');

    // 2. PEERS with a connection of an agent that was not delegated.
    ch = await channelTo(h1);
    ch.send(MigrationStep.DELEGATE, delegate);
    ch.send(MigrationStep.PEERS, encodePeersStep({ connections: [{ agent: Identity.generate().id, id: Buffer.alloc(16, 7), role: 'client', peer: agent.id }] }));
    await expectAbort(ch, 'PEERS of an undelegated agent');

    // 3. A CONFIRM that is not {} (the old destination never looked at it).
    ch = await channelTo(h1);
    ch.send(MigrationStep.DELEGATE, delegate);
    ch.send(MigrationStep.PEERS, encodePeersStep({ connections: [] }));
    const ids = await ch.recv([MigrationStep.CONNECTION_IDS]);
    assert.deepEqual(decodeConnectionIdsStep(ids.payload), { ok: true, collisions: [] });
    ch.send(MigrationStep.CONFIRM, Buffer.from('{"go":true}'));
    await expectAbort(ch, 'CONFIRM with a field');
    assert.notEqual(encodeConfirmStep().toString(), '{"go":true}');

    assert.equal(h1.agentIds().includes(agent.id), false, 'nothing attached');
    assert.equal(await net.location.lookup(agent.id), undefined, 'nothing registered');

    // The destination is unharmed: a real migration to it goes through, the stream exact.
    const [c, s] = await connectedPair(net);
    const rs = new Reader();
    rs.attach(s);
    c.write(pattern(5, 0, 4000));
    await waitFor(() => rs.length === 4000, 5000, 'bytes before the move');
    const [h2] = net.hosts.slice(2) as [Host];
    await h0.migrateAgent(c.localAgent, { ip: h2.ip, redirectorPort: h2.redirectorPort, hostId: h2.id });
    const moved = h2.socketsOf(c.localAgent);
    assert.equal(moved.length, 1);
    moved[0]!.write(pattern(5, 4000, 4000));
    await waitFor(() => rs.length === 8000, 10_000, 'bytes after the move');
    assert.ok(rs.bytes().equals(pattern(5, 0, 8000)));
  } finally {
    await net.close();
  }
});
