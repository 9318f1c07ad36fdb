// Scenario: 20,000 bad datagrams to a host's control port and 20,000 to a rendezvous (issue 10,
// finding 6), from four source addresses and many ports: junk that does not decode, truncated
// headers, requests of an unknown type, truncated SUS. Every one is refused and accounted for,
// but the logs do not grow with the attack: per 10-s window (LOG_REFUSAL_WINDOW_MS) each writes
// at most LOG_REFUSAL_LINES_PER_WINDOW refusal lines plus one log.suppressed line per (code,
// source) key, at most LOG_REFUSAL_KEYS + 1 (50 + 64 + 1 = 115 lines), and the written lines plus
// the summaries' counts add up to the datagrams received. (Before: one warn line per datagram.)
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { DatagramSocketLike } from '../../src/control/index.js';
import { RendezvousServer } from '../../src/location/index.js';
import { MemoryLogger, limit } from '../../src/util/index.js';
import { MessageType, encodeDatagram } from '../../src/wire/index.js';
import { startHosts } from '../helpers/harness.js';
import { Attacker, Tap, sleep } from '../helpers/attacker.js';

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const N = 20_000;

function bad(i: number): Buffer {
  const requestId = (i * 7919 + 1) >>> 0;
  switch (i % 4) {
    case 0: {
      const b = randomBytes(40);
      b[0] = 1;
      b[3] = 0xee; // reserved byte: undecodable, dropped unanswered
      return b;
    }
    case 1:
      return encodeDatagram({ type: 200, flags: 0, requestId }, Buffer.alloc(4));
    case 2:
      return encodeDatagram({ type: MessageType.SUS, flags: 0, requestId }, Buffer.alloc(5));
    default:
      return encodeDatagram({ type: MessageType.SUS, flags: 0, requestId }, Buffer.alloc(0)).subarray(0, 5); // a truncated header
  }
}

/** Refusal and summary lines of `log`, and what they account for. */
function account(log: MemoryLogger): { warn: number; written: number; suppressed: number; summaries: number } {
  const warn = log.lines.filter((l) => l.level === 'warn');
  const summaries = warn.filter((l) => l.event === 'log.suppressed');
  return {
    warn: warn.length,
    written: warn.length - summaries.length,
    suppressed: summaries.reduce((n, l) => n + (l.fields['suppressed'] as number), 0),
    summaries: summaries.length,
  };
}

test('20,000 bad datagrams to a host and to a rendezvous write a bounded number of log lines', async () => {
  const hostLog = new MemoryLogger();
  const rvLog = new MemoryLogger();
  let hostTap: Tap | undefined;
  let rvTap: Tap | undefined;
  const net = await startHosts(1, { logger: hostLog, wrapControlSocket: (s: DatagramSocketLike) => (hostTap = new Tap(s)) });
  cleanups.push(() => net.close());
  const rv = await RendezvousServer.start({ logger: rvLog, wrap: (s) => (rvTap = new Tap(s)) });
  cleanups.push(() => rv.close());
  const attackers: Attacker[] = [];
  for (let i = 2; i <= 5; i++) attackers.push(await Attacker.bind(`127.0.0.${i}`));
  cleanups.push(() => attackers.forEach((a) => a.close()));
  const targets = [net.hosts[0]!.controlAddress, rv.address];

  const received = (): number[] => [hostTap!.received.length, rvTap!.received.length];
  const settle = async (): Promise<void> => {
    for (let last = ''; ; ) {
      await sleep(300);
      const now = received().join();
      if (now === last) return;
      last = now;
    }
  };
  // Paced, and topped up until each has received N: a loaded machine drops some from the socket
  // buffer, and the point is how many lines N refusals write.
  const begin = performance.now();
  let k = 0;
  for (let round = 0; round < 4 && Math.min(...received()) < N; round++) {
    const want = received().map((r) => N - r);
    for (let i = 0; i < Math.max(...want); i += 100, await sleep(10)) {
      for (let j = i; j < Math.min(i + 100, Math.max(...want)); j++, k++) {
        targets.forEach((t, x) => j < want[x]! && attackers[(k >> 2) % attackers.length]!.send(t, bad(k)));
      }
    }
    await settle();
  }
  const seconds = (performance.now() - begin) / 1000;
  hostLog.flushRefusals();
  rvLog.flushRefusals();

  const windows = Math.ceil((seconds * 1000) / limit('LOG_REFUSAL_WINDOW_MS')) + 1;
  const perWindow = limit('LOG_REFUSAL_LINES_PER_WINDOW') + limit('LOG_REFUSAL_KEYS') + 1;
  for (const [name, log, got] of [['host', hostLog, received()[0]!], ['rendezvous', rvLog, received()[1]!]] as const) {
    const a = account(log);
    console.log(`${name}: ${got} bad datagrams received in ${seconds.toFixed(1)} s; ${a.warn} warn lines (${a.written} refusals written, ${a.summaries} log.suppressed lines counting ${a.suppressed} more)`);
    assert.ok(got >= N, `${name} received ${got} of ${N}`);
    assert.ok(a.warn <= windows * perWindow, `${name}: ${a.warn} warn lines for ${got} datagrams, bound ${windows} windows × ${perWindow}`);
    assert.ok(a.summaries > 0 && a.suppressed > 0, 'the summaries say how many were not written');
    assert.equal(a.written + a.suppressed, got, `${name}: every refusal is written or counted`);
  }
});
