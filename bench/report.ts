/**
 * The bench's outputs besides JSON: the table printed on stdout, the Markdown report, and three
 * hand-written SVG charts (no plotting dependency): throughput by message size (Fig. 5), the
 * secure open's breakdown (Fig. 4), and migration downtime against the number of connections.
 */
import type { BenchResult } from './run.js';
import { allRows } from './run.js';
import type { OpenResult } from './lib/latency.js';
import { fmt, type Row } from './lib/stats.js';

/** The baseline's system, for short labels (`open/netns/tls/open` → `tls`, `tunnel/redis/relay` → `redis relay`, `tunnel/rtt/relay` → `rtt relay`). */
const baselineSystem = (r: Row): string => {
  const parts = r.baseline?.split('/').filter((x) => x !== 'netns') ?? [];
  return parts[1] === 'redis' || parts[1] === 'rtt' ? `${parts[1]} ${parts[2] ?? ''}` : (parts[1] ?? '');
};

/** The range of a ratio measured in rounds, e.g. ` (0.81–1.12 over 5 rounds)`; empty otherwise. */
const rangeText = (r: Row): string => (r.ratioRange ? ` (${fmt(r.ratioRange.min)}–${fmt(r.ratioRange.max)} over ${r.ratioRange.rounds} rounds)` : '');

const rowLine = (r: Row): string[] => {
  const s = r.summary;
  return [r.id, s ? fmt(s.p50) : fmt(r.value), s ? fmt(s.p90) : '', s ? fmt(s.p99) : '', r.unit, r.ratio !== undefined ? `${fmt(r.ratio)}× ${baselineSystem(r)}${rangeText(r)}` : '', r.note ?? ''];
};

/** `open --netns` beside loopback: p50 of each system's open and close, and the run's ratios. */
function netnsLines(s: OpenResult, table: (head: string[], body: string[][]) => string[]): string[] {
  const ns = s.netns;
  if (!ns) return [];
  if ('error' in ns) return [`open --netns FAILED: ${ns.error}`];
  const body = Object.entries(ns.p50).map(([system, x]) => [system, fmt(x.open.loopback), fmt(x.open.netns), fmt(x.close.loopback), fmt(x.close.netns)]);
  return [
    `open and close p50 (ms), loopback (one process) against between namespaces (${ns.client} → ${ns.server}, one process each):`,
    ...table(['system', 'open loopback', 'open netns', 'close loopback', 'close netns', ''], body.map((b) => [...b, ''])),
    `between namespaces: plainOpenVsTcp ${fmt(ns.ratios.plainOpenVsTcp)}, secureOpenVsTls ${fmt(ns.ratios.secureOpenVsTls)}, secureOpenVsLibp2p ${fmt(ns.ratios.secureOpenVsLibp2p)}`,
  ];
}

function textTable(head: string[], body: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)].join('\n');
}

/** The stdout table: every row, then the flat figures and the goals. */
export function renderTable(r: BenchResult): string {
  const out: string[] = [`ferry bench ${r.quick ? '--quick ' : ''}· ${r.date.slice(0, 10)} · ${r.machine.cpu} × ${r.machine.cores} · node ${r.machine.node} · ${r.seconds} s · load ${r.machine.loadavg.start} → ${r.machine.loadavg.end}`];
  for (const [name, s] of Object.entries(r.suites)) {
    out.push('', `== ${name}`);
    if (!s || 'error' in s) {
      out.push(`FAILED: ${s?.error ?? 'no result'}`);
      continue;
    }
    out.push(textTable(['row', 'p50/value', 'p90', 'p99', 'unit', 'ratio', 'note'], s.rows.map(rowLine)));
    const ns = netnsLines(s, (h, b) => [textTable(h, b)]);
    if (ns.length > 0) out.push('', ...ns);
  }
  out.push('', '== ratios (Ferry / baseline, same run)');
  for (const [k, v] of Object.entries(r.ratios)) out.push(`  ${k.padEnd(30)} ${fmt(v)}${r.notes[k] ? `  (${r.notes[k]})` : ''}`);
  out.push('', '== absolute');
  for (const [k, v] of Object.entries(r.absolute)) out.push(`  ${k.padEnd(30)} ${fmt(v)}`);
  out.push('', '== goals (the bar, not tests)');
  for (const g of r.goals) out.push(`  ${g.met === null ? ' n/a ' : g.met ? ' met ' : 'MISSED'}  ${g.goal}: ${fmt(g.value)} (bar ${g.bar})${g.note ? ` — ${g.note}` : ''}`);
  if (r.errors.length > 0) out.push('', '== errors', ...r.errors.map((e) => `  ${e}`));
  return out.join('\n');
}

const md = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;

/** The Markdown report (REPORT.md next to the JSON and the charts). */
export function renderMarkdown(r: BenchResult): string {
  const out: string[] = [
    `# ferry bench${r.quick ? ' --quick' : ''}: ${r.date.slice(0, 10)}`,
    '',
    `${r.machine.cpu} × ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, ${r.machine.os}, Node ${r.machine.node}; ${r.seconds} s in all; 1-minute load average ${r.machine.loadavg.start} at the start, ${r.machine.loadavg.end} at the end. Every ratio is Ferry over a baseline measured in the same run.`,
    '',
    '## Goals',
    '',
    md(['goal', 'figure', 'value', 'bar', 'met']),
    md(['---', '---', '---:', '---', '---']),
    ...r.goals.map((g) => md([g.goal + (g.note ? ` (${g.note})` : ''), `\`${g.figure}\``, fmt(g.value), g.bar, g.met === null ? 'n/a' : g.met ? 'yes' : '**no**'])),
    '',
    '## Charts',
    '',
    '![Throughput by message size](throughput.svg)',
    '',
    '![Where a secure open spends its time](open-breakdown.svg)',
    '',
    '![Migration downtime against connections](downtime.svg)',
    '',
  ];
  for (const [name, s] of Object.entries(r.suites)) {
    out.push(`## ${name}`, '');
    if (!s || 'error' in s) {
      out.push(`FAILED: ${s?.error ?? 'no result'}`, '');
      continue;
    }
    out.push(md(['row', 'what', 'p50 / value', 'p90', 'p99', 'unit', 'vs baseline', 'note']), md(['---', '---', '---:', '---:', '---:', '---', '---:', '---']));
    for (const row of s.rows) {
      const x = row.summary;
      out.push(md([`\`${row.id}\``, row.what, x ? fmt(x.p50) : fmt(row.value), x ? fmt(x.p90) : '', x ? fmt(x.p99) : '', row.unit, row.ratio !== undefined ? `${fmt(row.ratio)}× \`${row.baseline}\`${rangeText(row)}` : '', row.note ?? '']));
    }
    out.push('');
    // The text table's trailing empty column (it keeps the last figures right-aligned) is dropped here.
    const ns = netnsLines(s, (h, b) => ['', md(h.slice(0, -1)), md(h.slice(0, -1).map((_, i) => (i === 0 ? '---' : '---:'))), ...b.map((x) => md(x.slice(0, -1))), '']);
    if (ns.length > 0) out.push(...ns, '');
  }
  if (r.errors.length > 0) out.push('## Errors', '', ...r.errors.map((e) => `- ${e}`), '');
  return out.join('\n');
}

// ------------------------------------------------------------------ SVG

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLORS: Record<string, string> = { tcp: '#7f7f7f', tls: '#1f77b4', libp2p: '#9467bd', 'ferry-plain': '#ffbb78', 'ferry-sealed': '#d62728' };
const FONT = 'font-family="system-ui, sans-serif" font-size="12"';

function svg(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** A "nice" axis maximum and step for values up to `max`. */
function niceScale(max: number): { top: number; step: number } {
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  return { top: Math.ceil(max / step) * step || step, step };
}

function throughputSvg(r: BenchResult): string {
  const rows = allRows(r).filter((x) => x.id.startsWith('throughput/') && x.messageBytes !== undefined && !x.id.includes('/vs-') && x.system in COLORS);
  const systems = Object.keys(COLORS).filter((s) => rows.some((x) => x.system === s));
  const sizes = [...new Set(rows.map((x) => x.messageBytes!))].sort((a, b) => a - b);
  const W = 720;
  const H = 380;
  const L = 70;
  const B = 320;
  const T = 50;
  const max = Math.max(1, ...rows.map((x) => x.value ?? 0));
  const { top, step } = niceScale(max);
  const y = (v: number): number => B - ((B - T) * v) / top;
  const groupW = (W - L - 150) / Math.max(1, sizes.length);
  const barW = (groupW * 0.8) / Math.max(1, systems.length);
  const body: string[] = [];
  for (let v = 0; v <= top + 1e-9; v += step) body.push(`<line x1="${L}" x2="${W - 150}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
  body.push(`<text x="16" y="${(T + B) / 2}" transform="rotate(-90 16 ${(T + B) / 2})" text-anchor="middle">MiB/s</text>`);
  sizes.forEach((size, gi) => {
    const x0 = L + gi * groupW + groupW * 0.1;
    systems.forEach((sys, si) => {
      const v = rows.find((x) => x.system === sys && x.messageBytes === size)?.value ?? 0;
      body.push(`<rect x="${(x0 + si * barW).toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(B - y(v)).toFixed(1)}" fill="${COLORS[sys]}"><title>${esc(`${sys} ${size} B: ${v} MiB/s`)}</title></rect>`);
    });
    const label = size >= 1048576 ? `${size / 1048576} MiB` : `${size / 1024} KiB`;
    body.push(`<text x="${(x0 + (systems.length * barW) / 2).toFixed(1)}" y="${B + 18}" text-anchor="middle">${label}</text>`);
  });
  body.push(`<line x1="${L}" x2="${W - 150}" y1="${B}" y2="${B}" stroke="#000"/>`, `<text x="${(L + W - 150) / 2}" y="${B + 40}" text-anchor="middle">message size</text>`);
  systems.forEach((sys, i) => body.push(`<rect x="${W - 135}" y="${T + i * 22}" width="14" height="14" fill="${COLORS[sys]}"/><text x="${W - 115}" y="${T + i * 22 + 11}">${esc(sys)}</text>`));
  return svg(W, H, 'Throughput by message size (one direction, loopback)', body);
}

function breakdownSvg(r: BenchResult): string {
  const rows = allRows(r);
  const get = (id: string): number | undefined => {
    const x = rows.find((y) => y.id === id);
    return x ? (x.summary?.p50 ?? x.value) : undefined;
  };
  const parts: [string, string, string][] = [
    ['X25519 arithmetic', 'breakdown/x25519-arithmetic', '#1f77b4'],
    ['X25519 raw-key DER export/import', 'breakdown/key-encoding', '#aec7e8'],
    ['signatures (Ed25519)', 'breakdown/signatures', '#ff7f0e'],
    ['key schedule + MACs', 'breakdown/key-schedule', '#2ca02c'],
    ['data socket (TCP + CONNECT / CONNECT_ACK)', 'breakdown/data-socket', '#8c564b'],
    ['other (event loop, state machine)', 'breakdown/other', '#c7c7c7'],
  ];
  const refs: [string, number | undefined][] = [
    ['Ferry secure open (measured)', get('breakdown/total-secure')],
    ['Ferry plain open (measured)', get('breakdown/total-plain')],
    ['TLS 1.3 full handshake', get('open/tls/open')],
    ['js-libp2p dial + stream', get('open/libp2p/open')],
    ['raw TCP connect', get('open/tcp/open')],
  ];
  const encoding = (get('breakdown/key-agreement') ?? 0) - (get('breakdown/x25519-arithmetic') ?? 0);
  const segs = parts.map(([label, id, color]) => ({ label, color, v: Math.max(0, id === 'breakdown/key-encoding' ? encoding : (get(id) ?? 0)) }));
  const stack = segs.reduce((s, x) => s + x.v, 0);
  // js-libp2p's open is an order of magnitude longer; it is drawn cut at the edge, labelled.
  const max = Math.max(0.001, stack, ...refs.filter(([l]) => !l.startsWith('js-libp2p')).map(([, v]) => v ?? 0));
  const W = 760;
  const L = 230;
  const R = 110;
  const barH = 26;
  const T = 45;
  const x = (v: number): number => L + ((W - L - R) * v) / max;
  const body: string[] = [];
  let cur = 0;
  body.push(`<text x="${L - 8}" y="${T + 17}" text-anchor="end">parts of a secure open</text>`);
  for (const s of segs) {
    if (s.v <= 0) continue;
    body.push(`<rect x="${x(cur).toFixed(1)}" y="${T}" width="${(x(cur + s.v) - x(cur)).toFixed(1)}" height="${barH}" fill="${s.color}"><title>${esc(`${s.label}: ${fmt(s.v)} ms`)}</title></rect>`);
    cur += s.v;
  }
  body.push(`<text x="${x(cur) + 4}" y="${T + 17}">${fmt(stack)} ms</text>`);
  refs.forEach(([label, v], i) => {
    const yy = T + (i + 1) * (barH + 10);
    body.push(`<text x="${L - 8}" y="${yy + 17}" text-anchor="end">${esc(label)}</text>`);
    if (v === undefined) return;
    const cut = v > max;
    const end = cut ? x(max) : x(v);
    body.push(`<rect x="${L}" y="${yy}" width="${(end - L).toFixed(1)}" height="${barH}" fill="#555"/><text x="${end + 4}" y="${yy + 17}">${fmt(v)} ms${cut ? ' (cut)' : ''}</text>`);
    if (cut) body.push(`<line x1="${end - 14}" y1="${yy - 2}" x2="${end - 6}" y2="${yy + barH + 2}" stroke="#fff" stroke-width="3"/>`);
  });
  const legendY = T + (refs.length + 1) * (barH + 10) + 10;
  segs.forEach((s, i) => {
    const col = i % 2;
    const row = Math.floor(i / 2);
    body.push(`<rect x="${20 + col * 370}" y="${legendY + row * 20}" width="12" height="12" fill="${s.color}"/><text x="${37 + col * 370}" y="${legendY + row * 20 + 10}">${esc(`${s.label}: ${fmt(s.v)} ms`)}</text>`);
  });
  return svg(W, legendY + 80, 'Where a secure open spends its time (p50 of each part, ms)', body);
}

function downtimeSvg(r: BenchResult): string {
  const rows = allRows(r).filter((x) => x.id.startsWith('migration/ferry-secure/downtime/') && x.summary);
  const pts = rows.map((x) => ({ n: x.connections!, p50: x.summary!.p50, p90: x.summary!.p90 })).sort((a, b) => a.n - b.n);
  const W = 640;
  const H = 400;
  const L = 70;
  const B = 330;
  const T = 50;
  const Rr = W - 40;
  const nMax = Math.max(1000, ...pts.map((p) => p.n));
  const one = pts[0]?.p50 ?? 1;
  const vMax = Math.max(10, one * 20, ...pts.map((p) => p.p90));
  const vMin = Math.min(0.1, ...pts.map((p) => p.p50));
  const lx = (n: number): number => L + ((Rr - L) * Math.log10(n)) / Math.log10(nMax);
  const lo = Math.floor(Math.log10(vMin));
  const hi = Math.ceil(Math.log10(vMax));
  const ly = (v: number): number => B - ((B - T) * (Math.log10(Math.max(v, 10 ** lo)) - lo)) / (hi - lo);
  const body: string[] = [];
  for (let e = lo; e <= hi; e++) body.push(`<line x1="${L}" x2="${Rr}" y1="${ly(10 ** e)}" y2="${ly(10 ** e)}" stroke="#ddd"/><text x="${L - 6}" y="${ly(10 ** e) + 4}" text-anchor="end">${fmt(10 ** e)}</text>`);
  for (let n = 1; n <= nMax; n *= 10) body.push(`<line x1="${lx(n)}" x2="${lx(n)}" y1="${T}" y2="${B}" stroke="#eee"/><text x="${lx(n)}" y="${B + 18}" text-anchor="middle">${n}</text>`);
  body.push(`<line x1="${L}" x2="${Rr}" y1="${B}" y2="${B}" stroke="#000"/>`, `<text x="${(L + Rr) / 2}" y="${B + 40}" text-anchor="middle">connections held by the moving agent</text>`);
  body.push(`<text x="16" y="${(T + B) / 2}" transform="rotate(-90 16 ${(T + B) / 2})" text-anchor="middle">downtime, ms (log)</text>`);
  // The goal's bars: 10 ms for one connection, 20 × the one-connection downtime at 1000.
  body.push(`<line x1="${L}" x2="${Rr}" y1="${ly(10)}" y2="${ly(10)}" stroke="#2ca02c" stroke-dasharray="4 3"/><text x="${L + 4}" y="${ly(10) - 4}" fill="#2ca02c">10 ms</text>`);
  body.push(`<line x1="${lx(1)}" y1="${ly(one)}" x2="${lx(1000)}" y2="${ly(one * 20)}" stroke="#ff7f0e" stroke-dasharray="4 3"/><text x="${lx(1000) - 4}" y="${ly(one * 20) + 16}" text-anchor="end" fill="#ff7f0e">goal: 20 × one connection at 1000</text>`);
  if (pts.length > 0) body.push(`<polyline fill="none" stroke="#d62728" stroke-width="2" points="${pts.map((p) => `${lx(p.n).toFixed(1)},${ly(p.p50).toFixed(1)}`).join(' ')}"/>`);
  for (const p of pts) {
    body.push(`<line x1="${lx(p.n)}" x2="${lx(p.n)}" y1="${ly(p.p50)}" y2="${ly(p.p90)}" stroke="#d62728"/><circle cx="${lx(p.n)}" cy="${ly(p.p50)}" r="4" fill="#d62728"><title>${p.n}: p50 ${p.p50} ms, p90 ${p.p90} ms</title></circle><text x="${lx(p.n) + (lx(p.n) > Rr - 60 ? -8 : 6)}" y="${ly(p.p50) + (lx(p.n) > Rr - 60 ? 4 : 14)}"${lx(p.n) > Rr - 60 ? ' text-anchor="end"' : ''}>${fmt(p.p50)} ms</text>`);
  }
  body.push(`<text x="${Rr}" y="${T + 4}" text-anchor="end" fill="#d62728">p50 (dot), p90 (whisker)</text>`);
  return svg(W, H, 'Migration downtime against connections (security on)', body);
}

/** The charts, by file name. */
export function renderSvgs(r: BenchResult): Record<string, string> {
  return { 'throughput.svg': throughputSvg(r), 'open-breakdown.svg': breakdownSvg(r), 'downtime.svg': downtimeSvg(r) };
}
