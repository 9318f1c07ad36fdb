// Scenario: an attacker sends CONNECTs of its own making to a security-on host: a genuinely built,
// signed CONNECT with one bit flipped (in the signature, and in a signed field) is refused with
// FERRY_ERR_BAD_SIGNATURE; one whose client key does not hash to the claimed client id with
// FERRY_ERR_IDENTITY_MISMATCH; an unsigned one with FERRY_ERR_SECURITY_REQUIRED; one to an agent
// that is here but not listening with FERRY_ERR_NOT_LISTENING; one to an agent that is not here
// with FERRY_ERR_UNKNOWN_AGENT. Each refusal is logged once, leaves no half-open connection
// behind (the next genuine open works), and a connection already up on the same hosts keeps
// streaming. Through the public API, `host.connect` to an agent nobody registered rejects with
// FERRY_ERR_UNKNOWN_AGENT, and to one that is not listening with FERRY_ERR_NOT_LISTENING.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { buildConnect } from '../../src/connection/index.js';
import type { Host } from '../../src/host/index.js';
import { Identity, type AgentId } from '../../src/identity/index.js';
import { FerryError, MemoryLogger, type ErrorCode } from '../../src/util/index.js';
import { MessageType, decodeConnect, encodeConnect } from '../../src/wire/index.js';
import { startHosts } from '../helpers/harness.js';
import { Attacker, Link, assertLoggedOnce, assertRefused, flipBit, sleep } from '../helpers/attacker.js';

/** A genuine CONNECT body from `client` to `to`, signed when `secure`. */
function connectBody(client: Identity, to: AgentId, secure = true): Buffer {
  return buildConnect({ secure, clientHalf: randomBytes(8), client, toAgent: to, redirectorPort: 9, window: 65536 }).body;
}

test('forged, mismatched, unsigned and misaddressed CONNECTs are refused with their typed errors', async () => {
  const log = new MemoryLogger();
  const net = await startHosts(2, { logger: log });
  const attacker = await Attacker.bind();
  try {
    const [h0, h1] = net.hosts as [Host, Host];
    const a = await h0.addAgent();
    const b = await h1.addAgent();
    const quiet = await h1.addAgent(); // on h1, never listens
    const c = await h0.addAgent();
    const bystander = await Link.open(h0, c.id, h1, b.id, 50);
    await bystander.exchange(40_000, 'bystander before');

    const mallory = Identity.generate();
    const genuine = connectBody(mallory, b.id);
    const sigAt = genuine.length - 64; // the Ed25519 signature closes a secure CONNECT
    // The genuine CONNECT is well formed: the flips below are the only reason for refusal.
    assert.equal(decodeConnect(genuine).signature.length, 64);

    const other = Identity.generate();
    const mismatched = (() => {
      // Signed by `other`, with `other`'s key, but claiming to come from mallory's id.
      const m = decodeConnect(connectBody(other, b.id));
      return encodeConnect({ ...m, fromAgent: Buffer.from(mallory.id, 'hex') });
    })();

    const cases: [string, Buffer, ErrorCode, number][] = [
      ['bit flipped in the signature', flipBit(genuine, sigAt + 10, 3), 'FERRY_ERR_BAD_SIGNATURE', 10],
      // Past flags, clientHalf, fromAgent, toAgent, clientAgentKey and redirectorPort: the low
      // byte of the u64 window. Still a valid CONNECT, just not the one that was signed.
      ['bit flipped in the signed window field', flipBit(genuine, 1 + 8 + 16 + 16 + 32 + 2 + 7), 'FERRY_ERR_BAD_SIGNATURE', 10],
      ['key does not hash to the claimed id', mismatched, 'FERRY_ERR_IDENTITY_MISMATCH', 14],
      ['unsigned CONNECT to a security-on host', connectBody(mallory, b.id, false), 'FERRY_ERR_SECURITY_REQUIRED', 15],
      ['agent here but not listening', connectBody(mallory, quiet.id), 'FERRY_ERR_NOT_LISTENING', 22],
      ['agent not here', connectBody(mallory, Identity.generate().id), 'FERRY_ERR_UNKNOWN_AGENT', 21],
    ];
    for (const [what, body, code, wire] of cases) {
      const before = h1.refusals.get(code) ?? 0;
      const reply = await attacker.request(h1.controlAddress, MessageType.CONNECT, body);
      assertRefused(reply, code, wire);
      assert.equal(h1.refusals.get(code), before + 1, `${what}: counted once`);
    }
    await assertLoggedOnce(log, 'h1', 'FERRY_ERR_BAD_SIGNATURE', 2);
    for (const code of ['FERRY_ERR_IDENTITY_MISMATCH', 'FERRY_ERR_SECURITY_REQUIRED', 'FERRY_ERR_NOT_LISTENING', 'FERRY_ERR_UNKNOWN_AGENT'] as const) {
      await assertLoggedOnce(log, 'h1', code);
    }
    await sleep(50);
    assert.equal(attacker.seen.length, cases.length, 'one error reply per CONNECT, nothing more');

    // The unmodified CONNECT verifies: proof that the single bit flip was the reason above. It
    // only makes a half-open endpoint that no one can confirm without mallory's ephemeral key.
    const ok = await attacker.request(h1.controlAddress, MessageType.CONNECT, genuine);
    assert.equal(ok.type, MessageType.CONNECT_ACK);

    // Through the public API.
    await assert.rejects(h0.connect(a.id, Identity.generate().id), (err: unknown) => err instanceof FerryError && err.code === 'FERRY_ERR_UNKNOWN_AGENT');
    await assert.rejects(h0.connect(a.id, quiet.id), (err: unknown) => err instanceof FerryError && err.code === 'FERRY_ERR_NOT_LISTENING');

    // No refusal left anything behind: a genuine open to the same agent works, and the
    // connection that was already up never noticed.
    const link = await Link.open(h0, a.id, h1, quiet.id, 60);
    await link.exchange(50_000, 'a genuine open after the refusals');
    await bystander.exchange(50_000, 'bystander after the refusals');
  } finally {
    attacker.close();
    await net.close();
  }
});
