// Scenario: a `ferry tunnel serve --allow-any --no-security` process, and one machine (a peer host
// on 127.0.0.1, written against the library in the test process) whose three fresh agents open 700
// STREAMs each and hold them. Together they get TUNNEL_STREAMS_PER_SOURCE (2,048); the rest are
// aborted without ACCEPTED and logged with FERRY_ERR_LIMIT_EXCEEDED and that limit. A peer on
// another address (127.0.0.2) still gets a stream. Before, the places were counted per agent only:
// with --allow-any, keys are free, so four fresh agents from one machine took every place of
// TUNNEL_MAX_STREAMS and every other peer was refused.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentSocket } from '../../src/connection/index.js';
import type { AgentId } from '../../src/identity/index.js';
import { Identity } from '../../src/identity/index.js';
import { limit } from '../../src/util/index.js';
import { TunnelKind } from '../../src/wire/index.js';
import { waitFor } from '../helpers/harness.js';
import { Processes } from '../helpers/processes.js';
import { ShaTarget, askStream, startPeerHost, startTunnelPair } from '../helpers/tunnel.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  procs.killAll();
});

const EACH = 700;

test('tunnel: the agents of one source address get at most TUNNEL_STREAMS_PER_SOURCE streams, and another address is served', { timeout: 180_000 }, async () => {
  const target = await ShaTarget.start(() => ({ bytes: 0, endFirst: false }));
  cleanups.push(() => target.close());
  // Plain: the limit does not depend on sealing, and 2,100 sealed handshakes cost three times the time.
  const pair = await startTunnelPair(procs, `127.0.0.1:${target.port}`, { plain: true, serveArgs: ['--allow-any'] });
  cleanups.push(() => pair.close());
  const serveAgent = pair.serveAgent as AgentId;
  const agents = [Identity.generate(), Identity.generate(), Identity.generate()];
  const machine = await startPeerHost(pair.rendezvous, agents, { plain: true, ip: '127.0.0.1' });
  cleanups.push(() => machine.close());

  const held: AgentSocket[] = [];
  cleanups.push(() => held.forEach((fs) => fs.destroy()));
  const answers = new Map<string, number>();
  await Promise.all(
    agents.flatMap((agent) =>
      Array.from({ length: EACH }, async () => {
        const answer = await askStream(machine.host, agent.id, serveAgent, held);
        answers.set(answer, (answers.get(answer) ?? 0) + 1);
      }),
    ),
  );
  const perSource = limit('TUNNEL_STREAMS_PER_SOURCE');
  assert.ok(EACH < limit('TUNNEL_STREAMS_PER_PEER') && agents.length * EACH > perSource, 'each agent alone is within its own places');
  assert.deepEqual(Object.fromEntries(answers), { [`kind ${TunnelKind.ACCEPTED}`]: perSource, FERRY_ERR_PEER_ABORTED: agents.length * EACH - perSource });
  await waitFor(() => /"event":"tunnel_denied".*"code":"FERRY_ERR_LIMIT_EXCEEDED".*"limit":"TUNNEL_STREAMS_PER_SOURCE"/.test(pair.serve.err()), 10_000, 'a coded denial line');

  // A peer on another address, while the first machine holds its share.
  const other = Identity.generate();
  const elsewhere = await startPeerHost(pair.rendezvous, [other], { plain: true, ip: '127.0.0.2' });
  cleanups.push(() => elsewhere.close());
  assert.equal(await askStream(elsewhere.host, other.id, serveAgent, held), `kind ${TunnelKind.ACCEPTED}`, 'another address gets a stream');

  // The machine's places come back when its streams end.
  for (const fs of held.splice(0)) fs.destroy();
  // Each refused try holds nothing: ask until the closes have reached the serving end.
  let again = '';
  for (const end = Date.now() + 20_000; again !== `kind ${TunnelKind.ACCEPTED}` && Date.now() < end; ) {
    if (again) await new Promise((r) => setTimeout(r, 100));
    again = await askStream(machine.host, agents[0]!.id, serveAgent, held);
  }
  assert.equal(again, `kind ${TunnelKind.ACCEPTED}`, "a stream again after the machine's streams ended");
  assert.equal(pair.serve.child.exitCode, null, 'the serving end runs');
});
