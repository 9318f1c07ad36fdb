// Scenario: agents with code migrate between hosts over the real migration channel (the five
// steps of Host.migrateAgent, authenticated host to host), not the in-process shortcut. An agent
// streaming to a peer agent calls ctx.migrate("hostId@ip:port") mid-stream; run(ctx) starts again
// on the destination with the same state and connection, every byte exactly once. An operator
// move through Host.migrateAgent goes through the runtime the same way. A destination whose policy
// refuses the agent answers ABORT with POLICY_DENIED: the source re-attaches, ctx.migrate rejects
// with that code and the agent runs on at the source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { AgentSocket } from '../../src/connection/index.js';
import { Identity } from '../../src/identity/index.js';
import { formatMigrationTarget, parseMigrationTarget, type Host } from '../../src/host/index.js';
import { isFerryError } from '../../src/util/index.js';
import { pattern, waitFor } from '../helpers/harness.js';
import { allowAll, connectWhenListening, echoRoundTrip, fixture, linesOf, startChannelNet } from '../helpers/agents.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const addr = (h: Host): string => formatMigrationTarget({ ip: h.ip, redirectorPort: h.redirectorPort, hostId: h.id });

test('migration targets parse and format', () => {
  const id = Identity.generate().id;
  assert.deepEqual(parseMigrationTarget('10.0.0.1:4000'), { ip: '10.0.0.1', redirectorPort: 4000 });
  assert.deepEqual(parseMigrationTarget(`${id}@[::1]:7`), { ip: '::1', redirectorPort: 7, hostId: id });
  assert.equal(formatMigrationTarget(parseMigrationTarget(`${id}@[::1]:7`)), `${id}@[::1]:7`);
  for (const bad of ['nowhere', 'x:0', 'x:70000', '@x:1', 'a b:1']) assert.throws(() => parseMigrationTarget(bad), (e: unknown) => isFerryError(e, 'FERRY_ERR_INVALID_ARGUMENT'), bad);
});

test('ctx.migrate over the migration channel: run() again on the destination, same state and connection, exactly once', async () => {
  const net = await startChannelNet(3);
  try {
    const [h0, , h2] = net.hosts as [Host, Host, Host];
    const PEER_SENDS = 600_000;
    const MOVER_SENDS = 500_000;
    const peer = await net.launch(1, fixture('stream-server.mjs'), { state: { send: PEER_SENDS } });
    await waitFor(() => linesOf(net.log, 'agent_log').some((l) => l.fields.text === 'listening'), 5000, 'peer listening');
    const mover = await net.launch(0, fixture('mover.mjs'), {
      state: { peer: peer.id, target: addr(h2), firstWrite: 200_000, total: MOVER_SENDS, readBeforeMove: 100_000, pauseMs: 50 },
    });
    const source = await mover.exited;
    assert.equal(source.reason, 'migrated', source.error?.message);
    assert.equal(source.target, addr(h2));
    const landed = net.runtimes[2]!.handleOf(mover.id);
    assert.ok(landed, 'the agent runs on the destination');
    const [dest, p] = await Promise.all([landed.exited, peer.exited]);
    assert.equal(dest.reason, 'finished', dest.error?.message);
    assert.equal(p.reason, 'finished', p.error?.message);
    assert.deepEqual(dest.result, { runs: 2, hosts: [h0.id, h2.id], received: PEER_SENDS, digest: sha(pattern(2, 0, PEER_SENDS)), remote: peer.id });
    assert.deepEqual(p.result, { received: MOVER_SENDS, digest: sha(pattern(1, 0, MOVER_SENDS)), remote: mover.id });
    const sealed = linesOf(net.log, 'agent_sealed');
    assert.equal(sealed.length, 1);
    assert.equal(sealed[0]!.fields.connections, 1);
    assert.deepEqual(net.runtimes[0]!.agentIds(), [], 'never on both');
    assert.deepEqual(h0.agentIds(), []);
    // Ended agents are dropped from their hosts.
    await waitFor(() => !net.hosts.some((h) => h.agentIds().length > 0), 5000, 'ended agents removed from their hosts');
  } finally {
    await net.close();
  }
});

test('operator Host.migrateAgent of a runtime agent goes through its runtime: echo keeps echoing, run() twice', async () => {
  const net = await startChannelNet(3);
  try {
    const [h0, h1, h2] = net.hosts as [Host, Host, Host];
    const echo = await net.launch(1, fixture('echo.mjs'));
    const sock: AgentSocket = await connectWhenListening(h0, echo.id);
    await echoRoundTrip(sock, 8, 1000);
    const got: Buffer[] = [];
    let n = 0;
    sock.on('data', (c: Buffer) => {
      got.push(c);
      n += c.length;
    });
    let sent = 0;
    const send = (k: number): void => {
      sock.write(pattern(9, sent, k));
      sent += k;
    };
    for (let i = 0; i < 10; i++) send(20_000);
    await h1.migrateAgent(echo.id, { ip: h2.ip, redirectorPort: h2.redirectorPort, hostId: h2.id });
    for (let i = 0; i < 10; i++) send(20_000);
    await waitFor(() => n >= sent, 10_000, 'all echoed');
    assert.equal(n, sent);
    assert.ok(Buffer.concat(got).equals(pattern(9, 0, sent)));
    const runs = linesOf(net.log, 'agent_log').filter((l) => String(l.fields.text).startsWith('echo run'));
    assert.deepEqual(
      runs.map((l) => l.fields.text),
      [`echo run 1 on ${h1.id} with 0 connections`, `echo run 2 on ${h2.id} with 1 connections`],
    );
    assert.deepEqual(net.runtimes[1]!.agentIds(), []);
    assert.deepEqual(net.runtimes[2]!.agentIds(), [echo.id]);
    sock.destroy();
  } finally {
    await net.close();
  }
});

test("a refusal by the destination's policy over the channel rolls back: typed error to ctx.migrate, the agent runs on", async () => {
  const owner = Identity.generate();
  const denyLanding = { version: 1, owners: { [owner.id]: { land: false } } };
  const net = await startChannelNet(3, { owner, policies: [allowAll(owner), allowAll(owner), denyLanding] });
  try {
    const [h0, , h2] = net.hosts as [Host, Host, Host];
    const echo = await net.launch(1, fixture('echo.mjs'));
    await connectWhenListening(h0, echo.id).then((s) => s.destroy());
    const h = await net.launch(0, fixture('try-migrate.mjs'), { state: { peer: echo.id, target: addr(h2), total: 400_000 } });
    const exit = await h.exited;
    assert.equal(exit.reason, 'finished', exit.error?.message);
    assert.deepEqual(exit.result, { code: 'FERRY_ERR_POLICY_DENIED', ok: true, received: 400_000, runs: 1, hostId: h0.id });
    assert.equal(linesOf(net.log, 'agent_refused').filter((l) => l.fields.h === 2 && l.fields.op === 'land').length, 1);
    // The destination admits before the source detaches anything: nothing paused, nothing re-attached.
    assert.equal(linesOf(net.log, 'agent_reattached').length, 0, 'refused before any connection was detached');
    assert.equal(h2.refusals.get('FERRY_ERR_POLICY_DENIED'), 1);
    assert.deepEqual(net.runtimes[2]!.agentIds(), []);
    assert.deepEqual(h2.agentIds(), []);
    // A host without a runtime refuses agents with code the same way. (First let the echo's
    // connection to the finished agent close: a detach racing a graceful close is not covered here.)
    await waitFor(() => net.hosts[1]!.socketsOf(echo.id).length === 0, 10_000, "the echo's connections closed");
    h2.useRuntime(undefined);
    await assert.rejects(h0.migrateAgent(echo.id, { ip: h2.ip, redirectorPort: h2.redirectorPort }), (e: unknown) => isFerryError(e, 'FERRY_ERR_UNKNOWN_AGENT'));
    // An operator's move (Host.migrateAgent) reports the rollback, with the destination's refusal as cause.
    await assert.rejects(
      net.hosts[1]!.migrateAgent(echo.id, { ip: h2.ip, redirectorPort: h2.redirectorPort }),
      (e: unknown) => isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK') && isFerryError((e as Error).cause, 'FERRY_ERR_REFUSED'),
    );
    const sock = await connectWhenListening(h0, echo.id);
    sock.write('still here');
    assert.equal((await new Promise<Buffer>((r) => sock.once('data', r))).toString(), 'still here');
    sock.destroy();
  } finally {
    await net.close();
  }
});
