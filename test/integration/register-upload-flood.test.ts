// Scenario: one address fills the rendezvous's REGISTER_PART reassembly table (PROTOCOL.md §12.3).
// A REGISTER with a 7- or 8-link chain does not fit a datagram and travels in fragments; the
// rendezvous holds at most REGISTER_MAX_UPLOADS (256) unfinished uploads, each for
// REGISTER_UPLOAD_TTL_MS. Before, a stranger sending 256 one-byte first fragments every 5 s (51
// datagrams a second, from one socket) kept the table full, and every honest long registration
// was refused FERRY_ERR_LIMIT_EXCEEDED. Now one source IP holds at most
// REGISTER_UPLOADS_PER_SOURCE uploads (its oldest makes room for its next), and a full table
// makes room from the address holding the most: the host's 8-link registration goes through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Identity, extendChain, freshChain } from '../../src/identity/index.js';
import { RendezvousClient, RendezvousServer } from '../../src/location/index.js';
import { limit } from '../../src/util/index.js';
import { LocationMessageType as T, encodeRegisterPart } from '../../src/wire/index.js';
import { Attacker, assertRefused } from '../helpers/attacker.js';

const HOUR = 3600_000;

test('one address cannot lock long registrations out of the REGISTER_PART table', { timeout: 60_000 }, async () => {
  const server = await RendezvousServer.start({ requireChains: true });
  const attacker = await Attacker.bind('127.0.0.9');
  let client: RendezvousClient | undefined;
  try {
    // The flood: first fragments of uploads that never finish, as many as the table holds.
    const ids: Buffer[] = [];
    for (let i = 0; i < limit('REGISTER_MAX_UPLOADS'); i++) {
      const uploadId = randomBytes(8);
      ids.push(uploadId);
      const reply = await attacker.request(server.address, T.REGISTER_PART, encodeRegisterPart({ uploadId, index: 0, count: 2, totalLength: 2, fragment: Buffer.alloc(1) }));
      assert.equal(reply.type, T.REGISTER_PART_ACK, `first fragment ${i} taken`);
    }
    // A host registers an agent with an 8-link chain (agent key, then seven hosts): in fragments.
    const agent = Identity.generate();
    const hosts = Array.from({ length: 8 }, () => Identity.generate());
    const now = Date.now();
    let chain = freshChain(agent, hosts[0]!.publicRaw, 1, now - 10 * 60_000, HOUR);
    for (let i = 1; i < 8; i++) chain = extendChain(chain, hosts[i - 1]!, hosts[i]!.publicRaw, i + 1, HOUR, now - (10 - i) * 60_000, { maxLinks: 8 });
    client = await RendezvousClient.connect({ server: server.address, signer: hosts[7]!, cacheTtlMs: 0 });
    await client.register({ agent: agent.id, hostId: hosts[7]!.id, ip: '127.0.0.1', controlPort: 4000, redirectorPort: 5000, epoch: 8, agentKey: agent.publicRaw, chain });
    assert.equal((await server.store.get(agent.id))?.chain?.length, 8);

    // The flooder held only its share: its oldest uploads made room for its newer ones (the next
    // fragment of the first finds nothing), while its newest is still there (its last fragment
    // completes a body, which is then refused as the garbage it is).
    const next = (uploadId: Buffer): ReturnType<Attacker['request']> => attacker.request(server.address, T.REGISTER_PART, encodeRegisterPart({ uploadId, index: 1, count: 2, totalLength: 2, fragment: Buffer.alloc(1) }));
    assertRefused(await next(ids[0]!), 'FERRY_ERR_UPLOAD_BROKEN');
    assertRefused(await next(ids.at(-1)!), 'FERRY_ERR_MALFORMED_DATAGRAM');
  } finally {
    client?.close();
    attacker.close();
    await server.close();
  }
});
