/**
 * `suspend-resume` (the paper's §4.2): on an open, idle connection, the latency of `suspend()`
 * (an in-band SUSPEND answered by the peer's DRAIN, the socket kept: resolves SUSPENDED) and of
 * `resumeConnection()` (RESUME / RESUME_ACK on the kept socket: resolves ESTABLISHED), against what an application without
 * suspend/resume would do around a move: close the connection and open a new one. With and
 * without security; both loops run on the same host pair in the same minute.
 */
import type { BenchContext } from '../lib/context.js';
import { iterations } from '../lib/context.js';
import { gc, ratio, summarize, type Row, type SuiteResult } from '../lib/stats.js';
import { ferryPair, sink } from '../lib/systems.js';

/** Run the suite. */
export async function runSuspendResume(ctx: BenchContext): Promise<SuiteResult> {
  const { warmup, n } = iterations(ctx);
  const rows: Row[] = [];
  for (const security of [true, false]) {
    const sys = security ? 'ferry-secure' : 'ferry-plain';
    const p = await ferryPair(security);
    p.server.on('connection', (s) => sink(s));
    const suspend: number[] = [];
    const resume: number[] = [];
    const both: number[] = [];
    const close: number[] = [];
    const reopen: number[] = [];
    const cycle: number[] = [];
    try {
      let sock = sink(await p.hosts[0]!.connect(p.a.id, p.b.id));
      gc();
      for (let i = 0; i < warmup + n; i++) {
        sock.write('x');
        const t0 = performance.now();
        await sock.suspend();
        const t1 = performance.now();
        await sock.resumeConnection();
        const t2 = performance.now();
        if (i >= warmup) {
          suspend.push(t1 - t0);
          resume.push(t2 - t1);
          both.push(t2 - t0);
        }
        ctx.progress(`suspend-resume: ${sys} suspend+resume ${Math.max(0, i + 1 - warmup)}/${n}`);
      }
      gc();
      for (let i = 0; i < warmup + n; i++) {
        sock.write('x');
        const t0 = performance.now();
        await sock.close();
        const t1 = performance.now();
        sock = sink(await p.hosts[0]!.connect(p.a.id, p.b.id));
        const t2 = performance.now();
        if (i >= warmup) {
          close.push(t1 - t0);
          reopen.push(t2 - t1);
          cycle.push(t2 - t0);
        }
        ctx.progress(`suspend-resume: ${sys} close+reopen ${Math.max(0, i + 1 - warmup)}/${n}`);
      }
      await sock.close();
    } finally {
      await p.close();
    }
    const label = security ? 'security on' : 'security off';
    const cyc: Row = { id: `suspend-resume/${sys}/close+reopen`, system: sys, what: `close + reopen (${label})`, unit: 'ms', summary: summarize(cycle) };
    const sr: Row = { id: `suspend-resume/${sys}/suspend+resume`, system: sys, what: `suspend + resume (${label})`, unit: 'ms', summary: summarize(both), baseline: cyc.id };
    sr.ratio = ratio(sr.summary!.p50, cyc.summary!.p50);
    rows.push(
      { id: `suspend-resume/${sys}/suspend`, system: sys, what: `suspend (${label})`, unit: 'ms', summary: summarize(suspend) },
      { id: `suspend-resume/${sys}/resume`, system: sys, what: `resume (${label})`, unit: 'ms', summary: summarize(resume) },
      sr,
      { id: `suspend-resume/${sys}/close`, system: sys, what: `close (${label})`, unit: 'ms', summary: summarize(close) },
      { id: `suspend-resume/${sys}/reopen`, system: sys, what: `reopen (${label})`, unit: 'ms', summary: summarize(reopen) },
      cyc,
    );
  }
  return { rows };
}
