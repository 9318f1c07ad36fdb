// Property, simulated: for random overlapping schedules over whole hosts on in-memory networks
// under virtual time (test/sim/world.ts), each side reads exactly what the other wrote, nothing
// arrives after a quiet period, every promise settles with an outcome the schedule allows, and
// every connection ends ESTABLISHED, stays so while every control request a peer acknowledged is
// replayed (its counter is old: the replay window must refuse it), then ends CLOSED after both
// ends close at once; or, for a connection closed, half-closed, opened late or cut off by a dead
// host, what test/sim/world.ts says that allows. The same seed gives the same trace (checked,
// also for one schedule of every kind). A failing schedule is shrunk and printed.
//
// Scale: FERRY_SIM_RUNS=<n> (default 10,000), run on FERRY_SIM_WORKERS threads (default: up to
// 2, one per core). Replay: FERRY_SIM_SEED=<seed> (runs that seed first); the run stops at the
// first failing seed and prints it with its replay command. FERRY_SIM_KEEP_GOING=1 runs every
// seed and prints every failing one (long soak runs). A line of progress (rate, time left) every
// FERRY_SIM_PROGRESS schedules (default 10,000).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { CLOSE_BLOCKED_WRITER_SCHEDULES, CLOSE_BUG_SCHEDULES, OPEN_FAULT_SCHEDULES, makeSchedule, runSchedule, type Schedule } from './world.js';
import { progressLine, simulate } from './pool.js';

const RUNS = Number(process.env.FERRY_SIM_RUNS ?? 10_000);
const SEED = process.env.FERRY_SIM_SEED ? Number(process.env.FERRY_SIM_SEED) : Date.now() % 2 ** 31;
const WORKERS = Number(process.env.FERRY_SIM_WORKERS ?? Math.min(2, availableParallelism()));
const KEEP_GOING = process.env.FERRY_SIM_KEEP_GOING === '1';
const PROGRESS_EVERY = Number(process.env.FERRY_SIM_PROGRESS ?? 10_000);

/**
 * Smaller schedules that still fail: drop operations one at a time, then halve writes (each
 * write's size, again while it still fails), until neither changes anything.
 */
async function shrink(s: Schedule): Promise<{ schedule: Schedule; failure: string }> {
  let best = s;
  let why = (await runSchedule(s)).failure!;
  const tryOne = async (t: Schedule): Promise<boolean> => {
    const r = await runSchedule(t);
    if (!r.failure) return false;
    best = t;
    why = r.failure;
    return true;
  };
  for (let progress = true; progress; ) {
    progress = false;
    for (let i = 0; i < best.ops.length; i++) {
      if (await tryOne({ ...best, ops: best.ops.filter((_, j) => j !== i) })) {
        progress = true;
        i--;
      }
    }
    for (let i = 0; i < best.ops.length; i++) {
      const o = best.ops[i]!;
      if (o.kind !== 'write' || o.n < 2) continue;
      if (await tryOne({ ...best, ops: best.ops.map((p, j) => (j === i ? { ...o, n: Math.floor(o.n / 2) } : p)) })) {
        progress = true;
        i--;
      }
    }
  }
  return { schedule: best, failure: why };
}

test('simulated schedules: exactly once, quiet, settled, closed', { timeout: Math.max(30 * 60_000, RUNS * 20) }, async () => {
  const started = performance.now();
  const r = await simulate(SEED, RUNS, WORKERS, {
    keepGoing: KEEP_GOING,
    // In a long run each failing seed is told at once (the summary lists them again, in order).
    onFailure: (f) => {
      if (KEEP_GOING) console.log(`# failed: seed ${f.seed}: ${f.message.split('\n')[0]}`);
    },
    onReport: (ran, failures) => {
      if (PROGRESS_EVERY > 0 && ran % PROGRESS_EVERY === 0 && ran < RUNS) console.log(progressLine(ran, RUNS, failures, performance.now() - started));
    },
  });
  if (r.failure) {
    const s = makeSchedule(r.failure.seed);
    const small = await shrink(s);
    console.log(`# schedule seed ${r.failure.seed} failed: ${r.failure.message}`);
    console.log(`# shrunk to ${small.schedule.ops.length} of ${s.ops.length} operations: ${small.failure}`);
    console.log(`# ${JSON.stringify(small.schedule)}`);
    console.log(`# replay: FERRY_SIM_SEED=${r.failure.seed} FERRY_SIM_RUNS=1 node --test dist/test/sim/exactly-once.test.js`);
  }
  if (r.failures.length > 1) {
    console.log(`# failing seeds (${r.failures.length}): ${r.failures.map((f) => f.seed).join(' ')}`);
    for (const f of r.failures) console.log(`# seed ${f.seed}: ${f.message.split('\n')[0]}`);
  }
  const secs = (performance.now() - started) / 1000;
  const failures = r.failures.length;
  console.log(`# simulated ${r.ran} schedules, ${failures} failures, seed ${SEED} (${r.steps} steps, ${(r.simulatedMs / 1000).toFixed(0)} simulated s, ${secs.toFixed(1)} s on ${Math.min(WORKERS, RUNS)} threads)`);
  assert.equal(failures, 0);
});

/**
 * Issue 11's third bug, written by hand: both agents move, then while both ends are still
 * resuming at their destinations (RES_SENT or RES_ACKED) one end's application suspends (a SUS
 * datagram) and the other's resumes 1 ms later (2 ms on main's simulator, whose draws differ: the
 * TCP window shifts them); the SUS crosses that resume. Before the fix (a
 * peer's SUS leaves a pending application resume() alive: core/control-incoming.ts `resumeAfter`)
 * the resuming end went SUSPENDED and its resume() never settled: with that line reverted this
 * schedule fails "operations still pending 120 s after the last began". The crossing itself is
 * asserted below, so a change of timing cannot make this pass without crossing.
 */
const RESUME_CROSSING_SUSPEND: Schedule = {
  seed: 11,
  hosts: 4,
  agents: 2,
  security: false,
  conns: [[0, 1]],
  loss: 0,
  ops: [
    { at: 10, kind: 'move', agents: [0], to: 2, via: 'direct' },
    { at: 10, kind: 'move', agents: [1], to: 3, via: 'direct' },
    { at: 28, kind: 'suspend', conn: 0, side: 0 },
    { at: 29, kind: 'resume', conn: 0, side: 1 },
  ],
};

/**
 * Schedules the simulator found failing, shrunk, kept so they never come back. Each failed before
 * its fix: a write blocked by backpressure never released when a resume's HELLO acknowledged the
 * bytes (7087); a resume after a long user suspend gave up at once on a reconnect limit counted
 * from an earlier socket loss (20461); our own RES, still retransmitting after the peer's crossing
 * RES resumed the connection, tore it down again 0.9 s later (29); a resume pending when the same
 * end called suspend() never settled (44); a RES that timed out under 30 % control loss made the
 * next attempt wait 10 s (PEER_MOVE_WAIT_MS) for the peer, which had not moved, to move
 * (1241175274: still SUSPENDED after the quiet period); a resume HELLO parked for the peer's
 * location proof whose link reset while it waited was then adopted dead, leaving one end
 * ESTABLISHED on it for ever and the other SUSPENDED (861160847); a move that took its epoch from
 * a lagging location service was refused by the compare-and-set, and its rollback, refused too,
 * was taken for the destination's commit: the agent ran on no host (1071); a user suspend in
 * RES_ACKED left our own crossing RES in flight, whose failure (PEER_MOVING) ended the suspend
 * early while its SUS datagram still retransmitted: that SUS reached the peer after both had
 * resumed and suspended the connection again (5551755: SUSPENDED/SUSPENDED after the quiet period);
 * a peer that moved while suspended, whose old host then died, was sought at the dead (silent)
 * address until the reconnect limit: each RES was cut short by the resume deadline before its
 * control timeout could send the next try to the location service (20319: CLOSED/CLOSED; and
 * 60301, the same with a lagging location service); an open begun just before its agent's move
 * completed on the source after the agent left, so the connection stayed there, out of the
 * agent's reach (70002); a connection closed by an operation whose closing end's host then died
 * was skipped by the final phase, so its living end, suspended and never told, was not asked to
 * resume and learn its peer was gone (502483, a simulator fix: CLOSED/SUSPENDED); and that fix must
 * not ask an end that is CLOSED already (503053: a close during the closer's own move, then the
 * peer's host died; the ask never settled); a resume dial answered after a move's suspend began
 * was adopted in SUS_SENT and stayed live through the move, acknowledging bytes the checkpoint
 * did not carry: the peer then refused every resume below its acknowledged offset (83473:
 * CLOSED/CLOSED with 4,687 bytes never delivered); and a graceful close by the peer failed this
 * end's write waiting for room at once, which destroyed the stream with the peer's bytes not yet
 * read (104613, fin not seen); a CLS unacknowledged after four tries was given up, the peer never
 * told (40022 and 70085, {@link CLOSE_BUG_SCHEDULES}); an open whose server half lost its socket,
 * or whose handshake deadline a clock jump fired, before the client's confirmation was read was
 * dropped by the server while the client was ESTABLISHED (71698 and 73308, {@link OPEN_FAULT_SCHEDULES});
 * found once those faults were no longer avoided: a SUS (2001097) or a RES (3785) still out when
 * the connection began to close failed later and ended the close as a CLS timeout, before the CLS
 * reached the peer; a move waited for a close of one of its agent's connections, retried up to the
 * reconnect limit, while the agent's other connections stayed suspended until their peers gave up
 * (2196: CLOSED at both ends of a connection nobody closed); a clock jump of 5.3 s across a
 * server's handshake deadline, which fired only 0.3 s late, dropped a half-open whose client's
 * confirmation was on its way (2006824); and two simulator faults, an end a move carried that the
 * peer's CLS closed before the application took its new object (46589), and a resume pending at
 * the peer of a closing end whose host then died, which may fail PEER_UNREACHABLE (3744).
 * 302844 (an open's end never found, still moving) failed before 2196's fix too. 20001719 (a
 * simulator fix): a clock jump of 5.1 s carried an open past its handshake limit after the server
 * half's socket died, so the server dropped its half-open while the client was ESTABLISHED, and the
 * client end failed PEER_UNREACHABLE at its reconnect limit: allowed now (as TCP resets a client
 * whose final ACK found no SYN_RECEIVED), and the application opens again. 50088801: a jump that
 * ended 7 ms before a half-open's deadline, then a reset of its socket, left the client's RES no
 * time to confirm it: the server dropped it while the client was ESTABLISHED (fixed in core/open.ts).
 * 80062219: the same after the client's RES had confirmed the half-open, whose resume a pause and
 * lost datagrams held past the handshake deadline; a half-open the RES confirms is now opened (it
 * goes to the agent and resumes as any other connection).
 */
const REGRESSIONS: Schedule[] = [
  { seed: 7087, hosts: 3, agents: 3, security: false, conns: [[0, 1], [1, 2], [2, 0]], loss: 0.05, ops: [{ at: 15.980949872173369, kind: 'blackhole', link: 662, ms: 564 }, { at: 115.70683447178453, kind: 'write', conn: 1, side: 1, n: 1598 }, { at: 150.61431004665792, kind: 'move', agents: [1], to: 2, via: 'direct' }, { at: 173.27266896609217, kind: 'write', conn: 2, side: 1, n: 91925 }] },
  { seed: 20461, hosts: 3, agents: 5, security: true, conns: [[0, 1]], loss: 0.05, ops: [{ at: 75.54404891701415, kind: 'cut', link: 100, ms: 0 }, { at: 101.30148528050631, kind: 'suspend', conn: 0, side: 1 }, { at: 125.04754324117675, kind: 'suspend', conn: 0, side: 0 }] },
  { seed: 29, hosts: 2, agents: 2, security: false, conns: [[0, 1]], loss: 0.3, ops: [{ at: 0.932351176859811, kind: 'replay', host: 0, pick: 696 }, { at: 10.368857260560617, kind: 'move', agents: [1, 0], to: 0, via: 'channel' }, { at: 15.35011389432475, kind: 'write', conn: 0, side: 1, n: 114529 }, { at: 58.440803590230644, kind: 'move', agents: [1], to: 1, via: 'direct' }, { at: 64.69368370855227, kind: 'write', conn: 0, side: 0, n: 108069 }, { at: 80.50108687928878, kind: 'move', agents: [0, 1], to: 0, via: 'direct' }, { at: 114.64925937424414, kind: 'write', conn: 0, side: 0, n: 12503 }] },
  { seed: 44, hosts: 4, agents: 2, security: false, conns: [[0, 1]], loss: 0.3, ops: [{ at: 159.75198893388733, kind: 'suspend', conn: 0, side: 0 }, { at: 243.30032897251658, kind: 'move', agents: [0], to: 0, via: 'direct' }, { at: 305.71599076199345, kind: 'resume', conn: 0, side: 1 }, { at: 490.74501129821874, kind: 'suspend', conn: 0, side: 1 }] },
  { seed: 1241175274, hosts: 3, agents: 5, security: false, conns: [[0, 1], [1, 2], [2, 3], [3, 4], [4, 0]], loss: 0.3, ops: [{ at: 41.91682999371551, kind: 'blackhole', link: 682, ms: 1739 }, { at: 141.3240630645305, kind: 'write', conn: 0, side: 0, n: 18683 }, { at: 307.7089278679341, kind: 'write', conn: 3, side: 1, n: 16181 }, { at: 308.9851297426503, kind: 'move', agents: [1], to: 1, via: 'channel' }, { at: 346.7455070314463, kind: 'write', conn: 4, side: 0, n: 2171 }] },
  { seed: 861160847, hosts: 2, agents: 2, security: true, conns: [[0, 1]], loss: 0.3, ops: [{ at: 66.42601061984897, kind: 'move', agents: [0], to: 1, via: 'direct' }, { at: 72.08230393566191, kind: 'move', agents: [0, 1], to: 0, via: 'direct' }, { at: 218.07694528251886, kind: 'blackhole', link: 904, ms: 372 }] },
  { seed: 1071, hosts: 4, agents: 3, security: true, conns: [[0, 1], [1, 2], [2, 0]], loss: 0.05, ops: [{ at: 96.73850347753614, kind: 'lag', ms: 1686 }, { at: 156.25069942395203, kind: 'move', agents: [1], to: 2, via: 'channel' }, { at: 473.28140354622155, kind: 'move', agents: [2, 0, 1], to: 3, via: 'channel' }] },
  { seed: 5551755, hosts: 2, agents: 3, security: false, conns: [[0, 1], [1, 2], [2, 0]], loss: 0.05, ops: [{ at: 7.146358396857977, kind: 'move', agents: [2, 1], to: 1, via: 'direct' }, { at: 16.782463723793626, kind: 'move', agents: [2, 1], to: 0, via: 'direct' }, { at: 33.09927802858874, kind: 'move', agents: [1], to: 1, via: 'direct' }, { at: 33.63233983214013, kind: 'replay', host: 1, pick: 256 }, { at: 61.464515084866434, kind: 'move', agents: [2], to: 1, via: 'channel' }, { at: 66.31219043908641, kind: 'suspend', conn: 1, side: 0 }] },
  { seed: 20319, hosts: 2, agents: 5, security: true, conns: [[0, 1]], loss: 0.05, ops: [{ at: 113.88285369426012, kind: 'suspend', conn: 0, side: 0 }, { at: 128.15686947852373, kind: 'move', agents: [1], to: 1, via: 'direct' }, { at: 217.80284598469734, kind: 'crash', host: 1, how: 'machine', ms: 4584 }, { at: 228.76508619636297, kind: 'resume', conn: 0, side: 0 }, { at: 244.79976231604815, kind: 'suspend', conn: 0, side: 0 }] },
  { seed: 502483, hosts: 3, agents: 5, security: false, conns: [[0, 1], [4, 1], [3, 1]], loss: 0.3, ops: [{ at: 2.5718851955607533, kind: 'suspend', conn: 0, side: 0 }, { at: 96.95553271099925, kind: 'move', agents: [3], to: 2, via: 'direct' }, { at: 129.77586114685982, kind: 'write', conn: 0, side: 0, n: 328 }, { at: 172.64022796042264, kind: 'crash', host: 0, how: 'process', ms: 4295 }, { at: 181.5926969961729, kind: 'close', conn: 0, side: 0 }] },
  { seed: 503053, hosts: 2, agents: 3, security: false, conns: [[0, 1], [1, 2], [2, 0]], loss: 0.3, ops: [{ at: 136.12808615528047, kind: 'move', agents: [0], to: 1, via: 'direct' }, { at: 137.63166734576225, kind: 'close', conn: 2, side: 1 }, { at: 203.1906592939049, kind: 'crash', host: 0, how: 'machine', ms: 4893 }] },
  { seed: 70002, hosts: 4, agents: 2, security: true, conns: [[0, 1], [0, 1]], loss: 0.3, ops: [{ at: 103.18734150845557, kind: 'jump', ms: 5351 }, { at: 303.50226091453806, kind: 'open', conn: 1 }, { at: 313.3321452117525, kind: 'move', agents: [0], to: 2, via: 'direct' }] },
  { seed: 60301, hosts: 4, agents: 5, security: false, conns: [[0, 1], [1, 2], [2, 3], [3, 4], [4, 0], [4, 2]], loss: 0.05, ops: [{ at: 65.5672203390859, kind: 'write', conn: 5, side: 1, n: 2276 }, { at: 108.14037980907597, kind: 'write', conn: 4, side: 1, n: 7473 }, { at: 119.44563975022174, kind: 'move', agents: [1], to: 3, via: 'direct' }, { at: 120.91808286099695, kind: 'move', agents: [2], to: 2, via: 'direct' }, { at: 125.32224440202117, kind: 'move', agents: [4], to: 0, via: 'direct' }, { at: 131.28854105551727, kind: 'lag', ms: 2026 }, { at: 137.26457500830293, kind: 'move', agents: [3], to: 3, via: 'direct' }, { at: 186.13208310795017, kind: 'crash', host: 3, how: 'machine', ms: 1652 }] },
  { seed: 83473, hosts: 3, agents: 5, security: false, conns: [[0, 1], [1, 2], [2, 3], [3, 4], [4, 0]], loss: 0.05, ops: [{ at: 2.829021227080375, kind: 'move', agents: [3], to: 1, via: 'direct' }, { at: 9.30970476474613, kind: 'write', conn: 3, side: 1, n: 4687 }, { at: 11.202130699530244, kind: 'move', agents: [1], to: 0, via: 'direct' }, { at: 116.89812216209248, kind: 'move', agents: [4, 3, 0], to: 0, via: 'direct' }] },
  ...CLOSE_BLOCKED_WRITER_SCHEDULES,
  ...CLOSE_BUG_SCHEDULES,
  ...OPEN_FAULT_SCHEDULES,
  { seed: 2001097, hosts: 2, agents: 2, security: true, conns: [[0, 1]], loss: 0.3, ops: [{ at: 39.83105026604608, kind: 'move', agents: [0], to: 1, via: 'direct' }, { at: 69.98107093060389, kind: 'reset', link: 612, ms: 0 }, { at: 105.978640624322, kind: 'move', agents: [1], to: 1, via: 'direct' }, { at: 106.61227416736074, kind: 'close', conn: 0, side: 0 }] },
  { seed: 3785, hosts: 4, agents: 3, security: true, conns: [[0, 1]], loss: 0.3, ops: [{ at: 1.448647920973599, kind: 'reset', link: 839, ms: 0 }, { at: 30.877227143384516, kind: 'resume', conn: 0, side: 0 }, { at: 36.98249076027423, kind: 'move', agents: [1, 0, 2], to: 1, via: 'direct' }, { at: 56.3729843897745, kind: 'move', agents: [0], to: 1, via: 'direct' }, { at: 70.33454548148438, kind: 'close', conn: 0, side: 1 }] },
  { seed: 2196, hosts: 4, agents: 3, security: false, conns: [[0, 1], [2, 0], [2, 1]], loss: 0.3, ops: [{ at: 104.18445006199181, kind: 'crash', host: 0, how: 'machine', ms: 4033 }, { at: 142.427169454284, kind: 'move', agents: [2], to: 1, via: 'channel' }, { at: 220.54830050840974, kind: 'move', agents: [1], to: 2, via: 'direct' }, { at: 225.45935333985835, kind: 'close', conn: 0, side: 1 }] },
  { seed: 2006824, hosts: 4, agents: 3, security: true, conns: [[0, 1], [2, 1]], loss: 0.05, ops: [{ at: 24.434696655953303, kind: 'open', conn: 1 }, { at: 28.196538667893037, kind: 'jump', ms: 5320 }] },
  { seed: 46589, hosts: 4, agents: 4, security: true, conns: [[0, 1], [1, 2], [2, 3], [3, 0], [1, 0]], loss: 0.05, ops: [{ at: 31.08524449914694, kind: 'move', agents: [1], to: 1, via: 'channel' }, { at: 79.08422910911031, kind: 'close', conn: 1, side: 1 }] },
  // Not shrunk: an open whose ends were not found (an end still moving), fixed with 2196's fix.
  makeSchedule(302844),
  makeSchedule(20001719),
  // A jump of 4,989 ms used up most of a half-open's handshake time and a reset then took its
  // socket 7 ms before the deadline, so the client's RES could not come in time (50088801, shrunk):
  // such a half-open is now given one more handshake time (core/open.ts).
  { seed: 50088801, hosts: 4, agents: 3, security: false, conns: [[0, 1], [1, 2], [2, 0], [2, 1]], loss: 0.3, ops: [{ at: 79.65247537847608, kind: 'move', agents: [2], to: 0, via: 'channel' }, { at: 81.46526603400707, kind: 'open', conn: 3 }, { at: 105.19034874276258, kind: 'jump', ms: 4989 }, { at: 135.6903843123, kind: 'move', agents: [1], to: 3, via: 'channel' }, { at: 184.81761825853027, kind: 'reset', link: 486, ms: 0 }] },
  // A pause of 4,707 ms left a half-open 235 ms after the client's RES had confirmed it, too little
  // for the resume under 30 % loss: it was dropped at its handshake deadline, and the client,
  // ESTABLISHED, failed PEER_ABORTED (80062219, shrunk). A confirmed half-open is now opened.
  { seed: 80062219, hosts: 3, agents: 2, security: true, conns: [[0, 1], [0, 1]], loss: 0.3, ops: [{ at: 41.175882366718724, kind: 'suspend', conn: 0, side: 1 }, { at: 128.1994220390916, kind: 'move', agents: [0], to: 1, via: 'direct' }, { at: 134.74713016860187, kind: 'open', conn: 1 }, { at: 138.9063249444589, kind: 'cut', link: 225, ms: 0 }, { at: 192.945411473047, kind: 'jump', ms: 4707 }] },
  // A SUS that the peer's host refused (PEER_MOVING: the agent was leaving) kept its counter
  // unspent; replayed after the move rolled back, it suspended the peer, whose DRAIN reached our
  // end ESTABLISHED: the socket is lost, but our own earlier suspend() had ended the automatic
  // resume, so neither end resumed (90074548, shrunk). A socket lost that way now resumes (core/slots.ts).
  { seed: 90074548, hosts: 4, agents: 3, security: true, conns: [[0, 1], [1, 2], [2, 0]], loss: 0.3, ops: [{ at: 96.94985912181437, kind: 'move', agents: [1], to: 2, via: 'channel' }, { at: 117.17574858572334, kind: 'suspend', conn: 1, side: 1 }, { at: 172.61021103244275, kind: 'blackhole', link: 85, ms: 2937 }, { at: 460.7109544845298, kind: 'reset', link: 867, ms: 0 }, { at: 483.3408976206556, kind: 'replay', host: 2, pick: 861 }] },
  { seed: 3744, hosts: 3, agents: 2, security: true, conns: [[0, 1], [1, 0]], loss: 0.3, ops: [{ at: 10.22772861784324, kind: 'move', agents: [1], to: 0, via: 'direct' }, { at: 13.372084711678326, kind: 'resume', conn: 0, side: 0 }, { at: 14.69030463276431, kind: 'crash', host: 1, how: 'process', ms: 2807 }, { at: 25.318203364731744, kind: 'close', conn: 0, side: 1 }] },
  // The agents swapped hosts (both ends on h1 for a while). The client's RES to the server there
  // was answered, but the RES_ACK was lost; the server then moved to h0, and its proven RES from
  // there crossed the client's RES still retransmitting towards h1. The client's dial to h0 was cut
  // (RES_ACKED x socket_lost), which left that RES out; h1 answered its retransmission from the
  // reply cache with the server's RES_ACK of the h1 days, refused RESUME_UNPROVEN against the h0
  // proof and kept as the give-up code: h0 died, and the connection closed RESUME_UNPROVEN, not
  // PEER_UNREACHABLE (93253422, shrunk). Every way out of RES_ACKED now cancels our RES
  // (state-machine.ts), and in RES_ACKED its failure or refused answer ends only that RES.
  { seed: 93253422, hosts: 2, agents: 2, security: true, conns: [[0, 1]], loss: 0.05, ops: [{ at: 18.330451423767954, kind: 'move', agents: [0], to: 0, via: 'direct' }, { at: 87.64352747844532, kind: 'move', agents: [1], to: 1, via: 'direct' }, { at: 98.45362167526037, kind: 'cut', link: 678, ms: 0 }, { at: 117.56395345553756, kind: 'crash', host: 0, how: 'machine', ms: 1860 }, { at: 175.2708069048822, kind: 'resume', conn: 0, side: 0 }] },
  RESUME_CROSSING_SUSPEND,
  // Two simulator faults of the host deaths during migrations (found by their first runs): two
  // crashes waiting for direct moves shared one flag, so the second host died in the middle of
  // the final phase (3001038, shrunk); and a death that settled one migration from the dead host
  // at once skipped the next one in the list, which stayed in flight for ever (609248, shrunk).
  { seed: 3001038, hosts: 4, agents: 8, security: false, conns: [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7], [7, 0], [3, 0], [3, 1], [0, 2], [3, 1]], loss: 0.3, ops: [{ at: 10.568500271765515, kind: 'move', agents: [0, 7, 2, 6], to: 3, via: 'direct' }, { at: 29.10397396213375, kind: 'crash', host: 0, how: 'process', ms: 3970 }, { at: 127.65459392266348, kind: 'crash', host: 2, how: 'process', ms: 910, of: { agent: 6, end: 'destination' } }] },
  { seed: 609248, hosts: 3, agents: 7, security: false, conns: [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 0]], loss: 0.3, ops: [{ at: 9.867945950012654, kind: 'write', conn: 1, side: 0, n: 14652 }, { at: 12.346095734275877, kind: 'write', conn: 1, side: 0, n: 122882 }, { at: 24.9595328848809, kind: 'write', conn: 0, side: 1, n: 99453 }, { at: 80.83279592078179, kind: 'move', agents: [4], to: 0, via: 'channel' }, { at: 93.59102224232629, kind: 'suspend', conn: 1, side: 0 }, { at: 122.06824466306716, kind: 'move', agents: [1], to: 1, via: 'channel' }, { at: 148.99796226480976, kind: 'write', conn: 2, side: 1, n: 28384 }, { at: 197.98536685667932, kind: 'move', agents: [4], to: 0, via: 'channel', hostmates: true }, { at: 210.88546669622883, kind: 'move', agents: [2], to: 2, via: 'direct' }, { at: 219.45683762803674, kind: 'crash', host: 2, how: 'machine', ms: 1141, of: { agent: 4, end: 'destination' } }, { at: 232.754955786746, kind: 'move', agents: [1, 6, 2, 3], to: 2, via: 'channel' }, { at: 239.42773915361613, kind: 'resume', conn: 1, side: 1 }, { at: 246.62097464781255, kind: 'crash', host: 0, how: 'machine', ms: 4698 }] },
  // A connection lost to a group move of both its ends (110025151, shrunk; it failed on 355befb
  // too): its client end's data socket and the server's half-open socket were reset right after
  // the open; then both agents moved as one group. The server's agent waited for its half-open
  // to end, which needed the client's RES, while the client's agent was already paused for the
  // same move: the half-open expired after twice the handshake time and the connection was gone
  // at one end. A group move now lets every member's opens end before it pauses any member.
  { seed: 110025151, hosts: 2, agents: 2, security: true, conns: [[0, 1], [0, 1]], loss: 0.3, ops: [{ at: 2.2613807427696884, kind: 'move', agents: [1], to: 0, via: 'channel' }, { at: 6.2152155032381415, kind: 'close', conn: 0, side: 1 }, { at: 7.366570738144219, kind: 'close', conn: 0, side: 0 }, { at: 17.748298685764894, kind: 'move', agents: [0], to: 0, via: 'channel' }, { at: 64.09827666496858, kind: 'reset', link: 782, ms: 0 }, { at: 68.3373751072213, kind: 'move', agents: [0], to: 0, via: 'channel' }, { at: 70.42532865423709, kind: 'open', conn: 1 }, { at: 94.70657164533623, kind: 'reset', link: 475, ms: 0 }, { at: 100.78648010874167, kind: 'move', agents: [1], to: 1, via: 'channel', hostmates: true }] },
  // A simulator fault: the open of a connection whose server agent was being moved in a group;
  // that move first waited for another open of the agent's to end, a half-open whose socket was
  // lost in a clock jump and which got its second handshake time (core/open.ts), 10 s in all, and
  // the check gave up finding the new connection's ends while the move was still waiting
  // (100399314, shrunk). An end still moving now has that much longer.
  { seed: 100399314, hosts: 4, agents: 3, security: true, conns: [[0, 1], [1, 2], [2, 0], [1, 0]], loss: 0.3, ops: [{ at: 101.33647880866192, kind: 'write', conn: 2, side: 1, n: 4326 }, { at: 129.87085063778795, kind: 'move', agents: [1], to: 3, via: 'channel' }, { at: 130.2797168896068, kind: 'open', conn: 3 }, { at: 150.73621927108616, kind: 'jump', ms: 7844 }, { at: 200.2958538949024, kind: 'move', agents: [1, 2, 0], to: 3, via: 'channel' }, { at: 275.5426419542637, kind: 'reset', link: 407, ms: 0 }, { at: 305.48596991202794, kind: 'stall', link: 875, ms: 338 }] },
];

test('schedules that once failed pass', async () => {
  for (const s of REGRESSIONS) {
    const r = await runSchedule(s);
    assert.equal(r.failure, undefined, `regression schedule seed ${s.seed}`);
  }
});

test('the crossing regression crosses: the suspend goes out while resuming, and the SUS reaches the other end while it resumes, after its resume() was called', async () => {
  const r = await runSchedule(structuredClone(RESUME_CROSSING_SUSPEND));
  assert.equal(r.failure, undefined);
  const line = (mark: string): number => r.trace.findIndex((l) => l.includes(mark));
  const [suspendOp, resumeOp] = [line('"kind":"suspend"'), line('"kind":"resume"')];
  assert.ok(suspendOp >= 0 && resumeOp > suspendOp, 'both operations ran, the suspend first');
  assert.match(r.trace[suspendOp + 1] ?? '', / c00 RES_(SENT|ACKED)->SUS_SENT$/, 'the suspend went out while resuming');
  assert.match(r.trace[resumeOp + 1] ?? '', / c01 RES_(SENT|ACKED)->SUSPENDED$/, 'the SUS crossed the pending resume');
  const settled = r.trace.slice(resumeOp).findIndex((l) => l.endsWith('resume c01 ok'));
  assert.ok(settled > 1, 'the resume settled after the crossing');
  assert.ok(r.trace.slice(resumeOp).some((l) => l.endsWith('c01 SUSPENDED->RES_SENT')), 'and went on after it');
});

test('the same seed gives the same trace', async () => {
  const s = makeSchedule(SEED);
  const a = await runSchedule(s);
  const b = await runSchedule(makeSchedule(SEED));
  assert.equal(a.hash, b.hash, 'trace hashes of two runs of one seed');
  assert.equal(a.steps, b.steps);
});

/** One schedule with every kind of operation (open, half-close, close, crash, jump, lag among them). */
const EVERY_KIND: Schedule = {
  seed: 4242,
  hosts: 3,
  agents: 4,
  security: true,
  conns: [[0, 1], [1, 2], [2, 3], [3, 0], [0, 2]],
  loss: 0.3,
  ops: [
    { at: 5, kind: 'write', conn: 0, side: 0, n: 70000 },
    { at: 8, kind: 'slowReader', conn: 0, side: 1, ms: 600 },
    { at: 12, kind: 'lag', ms: 800 },
    { at: 15, kind: 'move', agents: [1], to: 2, via: 'channel' },
    { at: 18, kind: 'suspend', conn: 1, side: 0 },
    { at: 25, kind: 'end', conn: 2, side: 1 },
    { at: 30, kind: 'write', conn: 2, side: 0, n: 9000 },
    { at: 40, kind: 'open', conn: 4 },
    { at: 45, kind: 'move', agents: [2], to: 1, via: 'direct' },
    { at: 60, kind: 'resume', conn: 1, side: 1 },
    { at: 70, kind: 'replay', host: 0, pick: 3 },
    { at: 300, kind: 'cut', link: 7, ms: 0 },
    { at: 320, kind: 'jump', ms: 3000 },
    { at: 140, kind: 'close', conn: 3, side: 0 },
    { at: 160, kind: 'move', agents: [0, 3], to: 2, via: 'direct' },
    { at: 400, kind: 'crash', host: 1, how: 'process', ms: 1000 },
  ],
};

test('a schedule of every kind passes and gives the same trace twice', async () => {
  const a = await runSchedule(EVERY_KIND);
  const b = await runSchedule(structuredClone(EVERY_KIND));
  assert.equal(a.failure, undefined);
  assert.equal(a.hash, b.hash, 'trace hashes of two runs of one schedule');
  assert.equal(a.steps, b.steps);
  // Each kind took effect (none was skipped by a flag or found nothing to act on).
  for (const mark of ['host 1 died', 'open 4: both ends found', 'end after', 'close c30 ok', 'kind":"jump', 'kind":"lag']) assert.ok(a.trace.some((l) => l.includes(mark)), mark);
});
