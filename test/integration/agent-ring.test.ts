// Scenario: real confined agents (examples/agents/ring.mjs, the agent `ferry demo` runs) stream both
// ways on every link of a ring while operators move several of them at the same moment, each to a
// different host, mid-stream and more than once. Every byte arrives exactly once: on every
// direction of every link the writer sent `total`, the reader read `total`, every byte read was
// the byte written at its offset, and the writer's CRC-32 equals the reader's.
//
// Moves are timed by what the agents and their connections report, never by sleeps: a round starts
// once every member logged the start of its current run() and its connections took more bytes
// since; the agents' own logs then show that each run after a move began with bytes sent and
// bytes left. run() results are the 'exit' events of the runtime where each agent finished.
import { test } from 'node:test';
import { startAgentNet } from '../helpers/agents.js';
import { Ring, RING_RUNTIME } from '../helpers/ring.js';

test('two ring agents on different hosts both move at the same moment, three times mid-stream: every byte exactly once', async () => {
  const net = await startAgentNet(3, { runtime: RING_RUNTIME });
  try {
    // About 5 s of streaming each way on each link; the three rounds of moves take well under 1 s.
    const TOTAL = 2_500_000;
    const ring = await Ring.launch(net, 2, (i) => i, { total: TOTAL, chunk: 16 * 1024, bytesPerSecond: 500_000 });
    // Round 1 swaps the two hosts; then each moves on to a third.
    const rounds: [number, number][] = [
      [1, 0],
      [2, 1],
      [0, 2],
    ];
    const atMove: number[][] = [];
    for (const [a, b] of rounds) {
      await ring.flowing(128 * 1024, `before move ${atMove.length + 1}`);
      atMove.push([ring.written(0), ring.written(1)]);
      await ring.moveAtOnce([0, 1], (i) => (i === 0 ? a : b));
    }
    await ring.flowing(128 * 1024, 'after the last moves', { orDone: true });
    // The connections' view too: each move found bytes written and bytes left on every member.
    await ring.checkEnd(4, [3, 3], atMove);
  } finally {
    await net.close();
  }
});

test('a ring of five agents over three hosts, all five moving at once, twice mid-stream: all ten directions exactly once', async () => {
  const net = await startAgentNet(3, { runtime: RING_RUNTIME });
  try {
    const TOTAL = 2_000_000;
    const ring = await Ring.launch(net, 5, (i) => i % 3, { total: TOTAL, chunk: 16 * 1024, bytesPerSecond: 400_000 });
    const everyone = [0, 1, 2, 3, 4];
    const atMove: number[][] = [];
    for (let round = 0; round < 2; round++) {
      await ring.flowing(96 * 1024, `before move ${round + 1}`);
      atMove.push(everyone.map((i) => ring.written(i)));
      // Every member to the next host: members sharing a host scatter, and every host both sends and receives agents.
      await ring.moveAtOnce(everyone, (i) => (ring.at[i]! + 1 + ((i + round) % 2)) % 3);
    }
    await ring.flowing(96 * 1024, 'after the last moves', { orDone: true });
    await ring.checkEnd(10, [2, 2, 2, 2, 2], atMove);
  } finally {
    await net.close();
  }
});
