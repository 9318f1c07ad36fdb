#!/usr/bin/env node
// Shows that the simulator (test/sim/) catches planted bugs. For each bug, copy the built tree
// (dist/) to a temporary directory, plant the bug in the compiled JavaScript by one textual
// change, and run simulated schedules against the copy until one fails that passes on the
// unmodified build (or the budget runs out).
//
//   node scripts/sim-planted-bugs.mjs [maxSchedules=2000] [seed=1]
//
// Prints one line per bug and exits 1 if any bug went unnoticed. Needs `npm run build` first.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const MAX = Number(process.argv[2] ?? 2000);
const SEED = Number(process.argv[3] ?? 1);

/** Each bug: the file it lives in (under dist/src), the exact text it replaces, and what it becomes. */
const BUGS = [
  {
    name: '(a) resume does not rewind to the offset the peer acknowledged',
    file: 'connection/data-path.js',
    from: '        this.finSent = false;\n        this.seek(this.acked);',
    to: '        this.finSent = false;',
  },
  {
    name: '(b) a replayed control counter is accepted',
    file: 'connection/core/control-auth.js',
    from: '        if (m.counter > this.theirs)\n            return { kind: \'fresh\' };',
    to: '        return { kind: \'fresh\' };',
  },
  {
    name: '(c) a DATA frame below the receive offset is delivered',
    file: 'connection/data-path.js',
    from: '        if (end <= this.received)\n            return 0;',
    to: '        if (end <= this.received) {\n            this.queue.push(payload);\n            return payload.length;\n        }',
  },
  {
    name: '(d) the resume tie-break (who dials) inverted at the client end',
    file: 'connection/core/slots.js',
    from: 'return c.localAgent < c.peerAgent ||',
    to: "return (c.role === 'client' ? c.localAgent > c.peerAgent : c.localAgent < c.peerAgent) ||",
  },
];

// The unmodified build, to rule out schedules that fail without any planted bug.
const clean = await import(pathToFileURL(join(process.cwd(), 'dist', 'test', 'sim', 'world.js')).href);
let missed = 0;
for (const bug of BUGS) {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-planted-'));
  try {
    cpSync('dist', join(dir, 'dist'), { recursive: true });
    // The copy resolves its imports (fast-check etc.) from this checkout's node_modules.
    cpSync('package.json', join(dir, 'package.json'));
    const target = join(dir, 'dist', 'src', bug.file);
    const text = readFileSync(target, 'utf8');
    if (!text.includes(bug.from)) throw new Error(`${bug.name}: the text to replace is not in ${bug.file} (the code changed: update this script)`);
    writeFileSync(target, text.replace(bug.from, bug.to));
    const { makeSchedule, runSchedule } = await import(pathToFileURL(join(dir, 'dist', 'test', 'sim', 'world.js')).href);
    let found;
    for (let i = 0; i < MAX && !found; i++) {
      const r = await runSchedule(makeSchedule(SEED + i));
      // A catch counts only if the same schedule passes without the bug.
      if (r.failure && !(await clean.runSchedule(clean.makeSchedule(SEED + i))).failure) found = { i: i + 1, seed: SEED + i, why: r.failure };
    }
    if (found) console.log(`caught   ${bug.name}: schedule ${found.i} (seed ${found.seed}): ${found.why.slice(0, 160)}`);
    else {
      missed++;
      console.log(`MISSED   ${bug.name}: ${MAX} schedules passed`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
process.exit(missed > 0 ? 1 : 0);
