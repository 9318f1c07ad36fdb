// Fault paths of group moves and the migration channel (found in review, each failed before its
// fix): a member whose detach fails leaves the other members running where they were, not ended;
// a group that would not fit under AGENT_MAX_PER_HOST at the destination is refused before the
// commit instead of losing a member after it; a target the binding cannot parse rejects every
// member instead of leaving some frozen; and a peer that sends MIG_HELLO and then garbage is cut
// off instead of being buffered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Identity, type AgentId, type HostId } from '../../src/identity/index.js';
import { channelHost, type Host } from '../../src/host/index.js';
import { FerryError, LIMITS, isFerryError } from '../../src/util/index.js';
import { encodeMigHello, lengthPrefix } from '../../src/wire/index.js';
import { startHosts } from '../helpers/harness.js';
import { connectWhenListening, echoRoundTrip, fixture, linesOf, startAgentNet } from '../helpers/agents.js';

const target = (h: Host): { ip: string; redirectorPort: number; hostId: HostId } => ({ ip: h.ip, redirectorPort: h.redirectorPort, hostId: h.id });

async function channelNet(n: number): Promise<Awaited<ReturnType<typeof startAgentNet>>> {
  const net = await startAgentNet(n, { wrapHost: (_i, _b, host) => channelHost(host) });
  net.hosts.forEach((h, i) => h.useRuntime(net.runtimes[i]));
  return net;
}

test('a group member that cannot detach: every member runs on at the source, none is ended', async () => {
  const net = await channelNet(2);
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const e1 = await net.launch(0, fixture('echo.mjs'));
    const e2 = await net.launch(0, fixture('echo.mjs'));
    const s1 = await connectWhenListening(h1, e1.id);
    await echoRoundTrip(s1, 1, 5000);
    // A group move detaches each member through the host's private detachMoving(record), which
    // clears the member's moving mark when it fails (as this stand-in does).
    const inner = h0 as unknown as { detachMoving: (a: { identity: { id: AgentId }; moving: boolean }) => Promise<unknown> };
    const real = inner.detachMoving.bind(h0);
    inner.detachMoving = async (a) => {
      if (a.identity.id !== e2.id) return real(a);
      a.moving = false;
      throw new FerryError('FERRY_ERR_INTERNAL', 'simulated detach failure');
    };
    await assert.rejects(h0.migrateGroup([e1.id, e2.id], target(h1)), (e: unknown) => isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK'));
    assert.deepEqual(net.runtimes[0]!.agentIds().sort(), [e1.id, e2.id].sort(), 'both still run at the source');
    assert.equal(linesOf(net.log, 'agent_stopped').length, 0, 'no agent was ended');
    await echoRoundTrip(s1, 2, 5000);
    s1.destroy();
  } finally {
    await net.close();
  }
});

test('a group that would not fit under AGENT_MAX_PER_HOST is refused before anything moves', async () => {
  const spec = LIMITS.AGENT_MAX_PER_HOST as { value: number };
  const was = spec.value;
  spec.value = 2;
  const net = await channelNet(2);
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    await net.launch(1, fixture('echo.mjs'));
    const e1 = await net.launch(0, fixture('echo.mjs'));
    const e2 = await net.launch(0, fixture('echo.mjs'));
    await assert.rejects(h0.migrateGroup([e1.id, e2.id], target(h1)), (e: unknown) => isFerryError(e, 'FERRY_ERR_MIGRATION_ROLLED_BACK') && isFerryError((e as Error).cause, 'FERRY_ERR_LIMIT_EXCEEDED'));
    assert.deepEqual(net.runtimes[0]!.agentIds().sort(), [e1.id, e2.id].sort(), 'both run on at the source');
    assert.equal(net.runtimes[1]!.agentIds().length, 1);
    assert.equal(linesOf(net.log, 'agent_reattached').length, 0, 'refused before the detach');
  } finally {
    spec.value = was;
    await net.close();
  }
});

test('a group move to a target the binding cannot parse rejects, and every member thaws', async () => {
  const net = await channelNet(2);
  try {
    const [, h1] = net.hosts as [Host, Host];
    const e1 = await net.launch(0, fixture('echo.mjs'));
    const e2 = await net.launch(0, fixture('echo.mjs'));
    const s1 = await connectWhenListening(h1, e1.id);
    await assert.rejects(net.runtimes[0]!.migrateGroup([e1.id, e2.id], 'NOT-A-HOST-ID@127.0.0.1:1'), (e: unknown) => isFerryError(e));
    await echoRoundTrip(s1, 3, 5000);
    assert.deepEqual(net.runtimes[0]!.agentIds().sort(), [e1.id, e2.id].sort());
    s1.destroy();
  } finally {
    await net.close();
  }
});

test('MIG_HELLO followed by garbage: the host cuts the socket at once instead of buffering it', async () => {
  const net = await startHosts(1);
  const h = net.hosts[0]!;
  try {
    const sock = connect(h.redirectorPort, h.ip);
    await once(sock, 'connect');
    sock.on('error', () => {});
    const hello = encodeMigHello({ sourceHostKey: Identity.generate().publicRaw, ephemeral: randomBytes(32), nonce: randomBytes(16) });
    sock.write(Buffer.concat([lengthPrefix(hello.length), hello]));
    const body = randomBytes(256 * 1024);
    const frame = Buffer.concat([lengthPrefix(body.length), body]);
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    let sent = 0;
    const end = Date.now() + 3000;
    try {
      while (Date.now() < end && !sock.destroyed && sent < 64 * 1024 * 1024) {
        if (!sock.write(frame)) await Promise.race([once(sock, 'drain'), closed]);
        sent += frame.length;
      }
    } catch (err) {
      // The host cut the socket, as it should: a reset (or a write after it); nothing else.
      assert.ok(['ECONNRESET', 'EPIPE'].includes((err as NodeJS.ErrnoException).code ?? ''), `the write failed with ${String(err)}`);
    }
    await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error(`socket still open after ${sent} bytes`)), 3000))]);
    assert.ok(sent < 64 * 1024 * 1024, `cut off after ${sent} bytes`);
  } finally {
    await net.close();
  }
});
