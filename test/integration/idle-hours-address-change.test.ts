// Scenario: a connection left idle for hours, then its host changes address. Two hosts on
// loopback share a location table; h0 is a roaming host (bound to the wildcard, advertising
// 127.0.0.1). A connection between their agents carries bytes both ways, then nothing while the
// hosts' wall clock moves on three hours (an injected wall clock: the delegations issued at the
// open expire after DELEGATION_VALIDITY_MS, one hour). Then h0's address changes to 127.0.0.2:
// each RES must carry a location proof the peer verifies at its own (three hours later) wall
// time, so the host must re-issue the expired chain rather than send it. The connection resumes
// and the bytes written after the idle hours arrive once, in order, both ways. Real sockets; only
// the wall clock is moved, since Ferry has no timer that an idle connection depends on (docs/TUNNEL.md
// "Idle connections"; the simulator's idle-hours test runs every timer through simulated hours).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Host } from '../../src/host/index.js';
import { MemoryLocationTable } from '../../src/location/index.js';
import { MemoryLogger, limit } from '../../src/util/index.js';
import { Reader, connectedPair, pattern, waitFor, within } from '../helpers/harness.js';

const HOURS = 3;
const hosts: Host[] = [];
after(async () => {
  for (const h of hosts) await h.close();
});

test(`an idle connection survives ${HOURS} hours of wall time (its delegations expired) and then its host's address change`, { timeout: 60_000 }, async () => {
  assert.ok(HOURS * 3600_000 > limit('DELEGATION_VALIDITY_MS'), 'idle longer than a delegation lives');
  let skew = 0;
  const wallClock = (): number => Date.now() + skew;
  const location = new MemoryLocationTable();
  const logs = [new MemoryLogger(), new MemoryLogger()] as const;
  hosts.push(await Host.start({ location, name: 'h0', ip: '0.0.0.0', advertise: '127.0.0.1', wallClock, logger: logs[0] }));
  hosts.push(await Host.start({ location, name: 'h1', ip: '127.0.0.1', wallClock, logger: logs[1] }));
  const [h0] = hosts as [Host, Host];
  const [c, s] = await connectedPair({ hosts });
  const atC = new Reader();
  const atS = new Reader();
  atC.attach(c);
  atS.attach(s);
  c.write(pattern(1, 0, 10_000));
  s.write(pattern(2, 0, 10_000));
  await waitFor(() => atS.length === 10_000 && atC.length === 10_000, 10_000, 'the first bytes');

  // Idle: nothing is sent while the hosts' wall clock moves on three hours.
  skew += HOURS * 3600_000;
  h0.changeAddress('127.0.0.2');
  assert.equal(h0.ip, '127.0.0.2');
  c.write(pattern(1, 10_000, 50_000));
  s.write(pattern(2, 10_000, 50_000));
  await within(
    waitFor(() => atS.length >= 60_000 && atC.length >= 60_000, 40_000, `bytes after the idle hours (got ${atS.length} and ${atC.length} of 60000; states ${c.state}/${s.state})`),
    45_000,
    'the resume after the idle hours',
  );
  assert.deepEqual(atS.bytes(), pattern(1, 0, 60_000), 'client -> server: every byte once, in order');
  assert.deepEqual(atC.bytes(), pattern(2, 0, 60_000), 'server -> client: every byte once, in order');
  assert.equal(c.state, 'ESTABLISHED');
  assert.equal(s.state, 'ESTABLISHED');
  // The first RES from the new address was accepted: its proof verified at the peer's wall time.
  // (On loopback the old address still answers, so a connection could also come back through it;
  // with an expired chain h1 refuses the RES with FERRY_ERR_CHAIN_EXPIRED, which this catches.)
  const refusals = logs.flatMap((l) => l.lines.filter((x) => x.event === 'refused' || x.event === 'resume_unanswered'));
  assert.deepEqual(refusals, [], 'no RES refused or unanswered');
  assert.equal(logs[0].lines.filter((x) => x.event === 'address_changed').length, 1);
});
