// Scenario: two agents, each confined in its own worker on its own host, open a connection with
// ctx.connect / ctx.listen and stream megabytes both ways with backpressure; every byte arrives
// once and in order (SHA-256 and length on both sides). A reader that stops reading stops the
// writer: the host hands a worker at most its read window ahead of what agent code read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { limit } from '../../src/util/index.js';
import { pattern, waitFor } from '../helpers/harness.js';
import { connectWhenListening, fixture, sleep, startAgentNet } from '../helpers/agents.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('two agents on two hosts exchange 3 MB and 2 MB through ctx.connect / ctx.listen, byte for byte', async () => {
  const net = await startAgentNet(2);
  try {
    const SERVER_SENDS = 2_000_000;
    const CLIENT_SENDS = 3_000_000;
    const server = await net.launch(1, fixture('stream-server.mjs'), { state: { send: SERVER_SENDS } });
    await waitFor(() => net.log.lines.some((l) => l.event === 'agent_log' && l.fields.text === 'listening'), 5000, 'server listening');
    const client = await net.launch(0, fixture('stream-client.mjs'), { state: { peer: server.id, send: CLIENT_SENDS } });
    const [c, s] = await Promise.all([client.exited, server.exited]);
    assert.equal(c.reason, 'finished', c.error?.message);
    assert.equal(s.reason, 'finished', s.error?.message);
    assert.deepEqual(c.result, { received: SERVER_SENDS, digest: sha(pattern(2, 0, SERVER_SENDS)), remote: server.id });
    assert.deepEqual(s.result, { received: CLIENT_SENDS, digest: sha(pattern(1, 0, CLIENT_SENDS)), remote: client.id });
  } finally {
    await net.close();
  }
});

test('an agent that stops reading stops its peer: the host runs at most the read window ahead', async () => {
  const net = await startAgentNet(1, { runtime: { readWindow: 64 * 1024 } });
  try {
    // misbehave 'external' would allocate; use the echo agent and simply never read its replies:
    // the echo writes back into a connection whose reader (this test) is paused, so the echo
    // agent's own writes block, its reads stop, and the test's writes must stop too.
    const echo = await net.launch(0, fixture('echo.mjs'));
    const sock = await connectWhenListening(net.hosts[0]!, echo.id);
    sock.pause();
    let written = 0;
    let blocked = false;
    for (let i = 0; i < 400 && !blocked; i++) {
      const ok = sock.write(pattern(5, written, 64 * 1024));
      written += 64 * 1024;
      if (!ok) blocked = true;
      await sleep(1);
    }
    assert.ok(blocked, `write() never returned false after ${written} bytes`);
    // Bounded: the echo's host buffers, its worker window and both connection windows, no more.
    const bound = 2 * limit('SEND_BUDGET_BYTES') + 2 * limit('RECEIVE_WINDOW_BYTES') + 4 * 64 * 1024 + 2 * 64 * 1024 + 64 * 1024 * 8;
    assert.ok(written < bound, `${written} bytes accepted, bound ${bound}`);
    const rt = net.runtimes[0] as unknown as { agents: Map<string, { pumps: Map<number, { sent: number; acked: number }> }> };
    for (const p of rt.agents.get(echo.id)!.pumps.values()) assert.ok(p.sent - p.acked <= 64 * 1024, `worker ahead by ${p.sent - p.acked}`);
    // Resume reading: everything comes back, in order.
    const got: Buffer[] = [];
    let n = 0;
    sock.on('data', (c: Buffer) => {
      got.push(c);
      n += c.length;
    });
    sock.resume();
    await waitFor(() => n >= written, 10_000, 'echo drained');
    assert.ok(Buffer.concat(got).equals(pattern(5, 0, written)));
    sock.destroy();
  } finally {
    await net.close();
  }
});
