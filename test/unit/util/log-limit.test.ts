/**
 * The refusal log rate limit under a manual clock: the first LOG_REFUSAL_LINES_PER_KEY lines per
 * (code, source IP) per window, one log.suppressed line per key with the count when the window
 * ends (by its timer, with no further input), at most LOG_REFUSAL_LINES_PER_WINDOW lines in all,
 * keys beyond LOG_REFUSAL_KEYS summarised together; ports do not make new sources; children share
 * the bound; createLogger writes the same lines as MemoryLogger records.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, MemoryLogger, createLogger, limit, sourceIp } from '../../../src/util/index.js';

const W = limit('LOG_REFUSAL_WINDOW_MS');
const PER_KEY = limit('LOG_REFUSAL_LINES_PER_KEY');
const PER_WINDOW = limit('LOG_REFUSAL_LINES_PER_WINDOW');
const KEYS = limit('LOG_REFUSAL_KEYS');

const summaries = (log: MemoryLogger) => log.lines.filter((l) => l.event === 'log.suppressed');
const refusals = (log: MemoryLogger) => log.lines.filter((l) => l.event !== 'log.suppressed');

test('source IPs: ports and brackets do not make new sources', () => {
  assert.equal(sourceIp('10.0.0.1:5'), '10.0.0.1');
  assert.equal(sourceIp('[2001:db8::1]:5'), '2001:db8::1');
  assert.equal(sourceIp('2001:db8::1'), '2001:db8::1');
  assert.equal(sourceIp('10.0.0.1'), '10.0.0.1');
  assert.equal(sourceIp(undefined), '-');
});

test('per (code, source): the first lines, then one summary with the count when the window ends', () => {
  const clock = new ManualClock();
  const log = new MemoryLogger({ host: 'h' }, undefined, { clock });
  const child = log.child({ conn: 'c' });
  for (let i = 0; i < 100; i++) child.refused('refused', { code: 'FERRY_ERR_MALFORMED_DATAGRAM', from: `10.0.0.1:${1000 + i}` });
  for (let i = 0; i < 3; i++) log.refused('refused', { code: 'FERRY_ERR_UNKNOWN_TYPE', from: '10.0.0.1:7' });
  assert.equal(refusals(log).length, PER_KEY + 3);
  assert.equal(summaries(log).length, 0, 'nothing summarised before the window ends');
  clock.advance(W);
  const s = summaries(log);
  assert.equal(s.length, 1, 'only the key with lines held back gets a summary');
  assert.deepEqual(s[0]!.fields, { host: 'h', conn: 'c', of: 'refused', code: 'FERRY_ERR_MALFORMED_DATAGRAM', from: '10.0.0.1', suppressed: 100 - PER_KEY, windowMs: W });
  assert.equal(s[0]!.level, 'warn');
  // A new window: lines again.
  log.refused('refused', { code: 'FERRY_ERR_MALFORMED_DATAGRAM', from: '10.0.0.1:1' });
  assert.equal(refusals(log).length, PER_KEY + 4);
  assert.equal(clock.pending, 0, 'no timer without anything to summarise');
});

test('a flood from 20,000 sources writes at most LINES_PER_WINDOW + KEYS + 1 lines per window, and counts all', () => {
  const clock = new ManualClock();
  const log = new MemoryLogger({}, undefined, { clock });
  const codes = ['FERRY_ERR_MALFORMED_DATAGRAM', 'FERRY_ERR_UNKNOWN_TYPE', 'FERRY_ERR_UNKNOWN_CONNECTION'];
  for (let i = 0; i < 20_000; i++) log.refused('refused', { code: codes[i % 3]!, from: `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}:9` });
  log.flushRefusals();
  const bound = PER_WINDOW + KEYS + 1;
  assert.ok(log.lines.length <= bound, `${log.lines.length} lines, bound ${bound}`);
  assert.equal(refusals(log).length, PER_WINDOW);
  const counted = summaries(log).reduce((n, l) => n + (l.fields['suppressed'] as number), 0);
  assert.equal(refusals(log).length + counted, 20_000, 'every refusal is either written or counted');
  const other = summaries(log).find((l) => l.fields['of'] === 'refusals from other sources');
  assert.ok(other, 'keys beyond the table are summarised together');
  assert.equal(Object.values(other.fields['byCode'] as Record<string, number>).reduce((a, b) => a + b, 0), other.fields['suppressed']);
});

test('createLogger: the same limit on the lines it writes, shared by children', () => {
  const clock = new ManualClock();
  const out: string[] = [];
  const log = createLogger('info', { proc: 'x' }, (l) => out.push(l), { clock });
  const a = log.child({ conn: 'a' });
  const b = log.child({ conn: 'b' });
  for (let i = 0; i < 10; i++) (i % 2 ? a : b).refused('refused', { code: 'FERRY_ERR_MALFORMED_DATAGRAM', from: '127.0.0.9:1' });
  assert.equal(out.length, PER_KEY);
  clock.advance(W);
  const last = JSON.parse(out.at(-1)!) as Record<string, unknown>;
  assert.deepEqual([last['event'], last['suppressed'], last['proc']], ['log.suppressed', 10 - PER_KEY, 'x']);
});
