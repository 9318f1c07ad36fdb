// Scenario: `ferry tunnel connect --listen` (a process) opens streams to a serving end that is
// malicious: an agent on a host written against the library in the test process, found through a
// `ferry rendezvous` process. For its first three streams it answers a STREAM with ACCEPTED and
// aborts at once; for the next two, with LISTENING (a preamble that does not answer a STREAM); for
// the last two, with a preamble of another version. Every local client is reset (none hangs
// open), each after one stream (a refusal is not retried); the connecting end logs coded lines
// only and runs on. (This passes on the code before the splice guard of tunnel-stream-abort-race
// too: here the abort does not reach the connecting end before its splice.)
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentSocket } from '../../src/connection/index.js';
import { readPreamble } from '../../src/host/index.js';
import { Identity } from '../../src/identity/index.js';
import { encodeTunnelPreamble, TunnelKind } from '../../src/wire/index.js';
import { Processes } from '../helpers/processes.js';
import { startRendezvousNodes } from '../helpers/rendezvous.js';
import { startPeerHost } from '../helpers/tunnel.js';

const procs = new Processes();
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
  procs.killAll();
});

/** Connect, send a line, and resolve with how the connection ended (bounded: a hang fails). */
function client(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('still open after 20 s');
    }, 20_000);
    let code = 'closed without an error';
    s.on('error', (e: NodeJS.ErrnoException) => (code = e.code ?? e.message));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(code);
    });
    s.write('hello\n');
  });
}

test('tunnel: a serving end that aborts after ACCEPTED or answers wrongly resets the local client, never leaves it open', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-tunnel-mal-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const { addresses: [rendezvous] } = await startRendezvousNodes(procs, 1);
  const evil = Identity.generate();
  const peer = await startPeerHost(rendezvous!, [evil]);
  cleanups.push(() => peer.close());
  const answers: Array<(fs: AgentSocket) => void> = [];
  const abortAfterAccepted = (fs: AgentSocket): void => {
    fs.write(encodeTunnelPreamble({ kind: TunnelKind.ACCEPTED }));
    setImmediate(() => fs.destroy());
  };
  const answerWith = (bytes: Buffer) => (fs: AgentSocket): void => void fs.write(bytes);
  for (let i = 0; i < 3; i++) answers.push(abortAfterAccepted);
  for (let i = 0; i < 2; i++) answers.push(answerWith(encodeTunnelPreamble({ kind: TunnelKind.LISTENING, port: 80 })));
  for (let i = 0; i < 2; i++) answers.push(answerWith(Buffer.from([9, TunnelKind.ACCEPTED])));
  let streams = 0;
  const server = peer.host.listen(evil.id);
  server.on('connection', (fs: AgentSocket) => {
    fs.on('error', () => {});
    readPreamble(fs, 10_000).then(
      ({ preamble }) => {
        assert.equal(preamble.kind, TunnelKind.STREAM);
        const answer = answers[streams++];
        if (answer) answer(fs);
        else fs.destroy();
      },
      () => fs.destroy(),
    );
  });

  const connect = await procs.start(['tunnel', 'connect', evil.id, '--key', join(dir, 'c.key'), '--rendezvous', rendezvous!, '--listen', '127.0.0.1:0'], /ferry tunnel ready: .*listen=127\.0\.0\.1:(\d+)/);
  const port = Number(connect.ready[1]);
  const ended: string[] = [];
  for (let i = 0; i < answers.length; i++) ended.push(await client(port));
  assert.equal(streams, answers.length, 'one stream per client: a refusal is not retried');
  assert.deepEqual(ended, answers.map(() => 'ECONNRESET'), 'every local client was reset');
  assert.equal(connect.child.exitCode, null, 'the connecting end runs');
  const lines = connect
    .err()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; code?: string });
  assert.ok(lines.length > 0 && lines.every((l) => typeof l.code === 'string' && l.code.startsWith('FERRY_ERR_')), connect.err());
  assert.doesNotMatch(connect.err(), /Unhandled|TypeError|RangeError/);
});
