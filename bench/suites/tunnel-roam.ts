/**
 * The `tunnel` suite's address-change figure (with `--netns`; needs root): the time from a host
 * changing its address to bytes flowing through the tunnel again. Three network namespaces
 * (src/testing's NetnsLab): a `ferry rendezvous` in ns 0; `ferry tunnel serve --ip auto` and an
 * echo server in ns 1; `ferry tunnel connect` and a pinger (one byte every 5 ms through the
 * tunnel) in ns 2. Ns 1's address is replaced again and again; for each change, the figure is
 * from just before `ip addr del` to the first echo after the stall the change caused. The RTT of
 * the pinger's echoes in the same run is reported beside it.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { lineMatching, NetnsLab } from '../../src/testing/index.js';
import type { BenchContext } from '../lib/context.js';
import { sleep, summarize, type Row } from '../lib/stats.js';

const FERRY = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const CHILD = fileURLToPath(new URL('./tunnel-roam-child.js', import.meta.url));

/** Stdout lines of a child, from when it was spawned. */
function lines(child: ChildProcess): string[] {
  const out: string[] = [];
  let part = '';
  child.stdout!.on('data', (c: Buffer) => {
    part += c.toString();
    const ls = part.split('\n');
    part = ls.pop()!;
    out.push(...ls);
  });
  return out;
}

/** Rows `tunnel/ferry-sealed/address-change-recovery` and `…/address-change-rtt`. */
/** `dir`: where the tunnel ends' key files go. */
export async function addressChangeRows(ctx: BenchContext, dir: string): Promise<{ rows: Row[]; changes: number }> {
  const changes = ctx.quick ? 3 : 15;
  const lab = NetnsLab.create(3);
  const kids: ChildProcess[] = [];
  const spawn = (i: number, args: string[]): ChildProcess => {
    const c = lab.spawnNode(i, args, { stdin: 'pipe' });
    kids.push(c);
    return c;
  };
  try {
    ctx.progress('tunnel: address changes in network namespaces', true);
    const keyDir = dir;
    const rv = spawn(0, [FERRY, 'rendezvous', '--host', lab.ips[0]!, '--port', '0']);
    const rvAddr = (await lineMatching(rv, /^ferry rendezvous ready on (\S+:\d+) /))[1]!;
    const echo = spawn(1, [CHILD, 'echo']);
    const echoPort = (await lineMatching(echo, /^listening (\d+)$/))[1]!;
    const id = await lab.runNode(2, [FERRY, 'tunnel', 'id', '--key', `${keyDir}/connect.key`]);
    if (id.code !== 0) throw new Error(`tunnel id: ${id.stderr}`);
    const serve = spawn(1, [FERRY, 'tunnel', 'serve', '--key', `${keyDir}/serve.key`, '--to', `127.0.0.1:${echoPort}`, '--allow', id.stdout.trim(), '--ip', 'auto', '--rendezvous', rvAddr]);
    const agent = (await lineMatching(serve, /^ferry tunnel ready: agent=([0-9a-f]{32}) /))[1]!;
    const connect = spawn(2, [FERRY, 'tunnel', 'connect', agent, '--key', `${keyDir}/connect.key`, '--rendezvous', rvAddr, '--listen', '127.0.0.1:0', '--ip', lab.ips[2]!]);
    const listen = (await lineMatching(connect, /listen=127\.0\.0\.1:(\d+) /))[1]!;
    const ping = spawn(2, [CHILD, 'ping', listen]);
    const out = lines(ping);
    await sleep(1000);
    const recoveries: number[] = [];
    for (let k = 0; k < changes; k++) {
      ctx.progress(`tunnel: address change ${k + 1}/${changes}`);
      const seen = out.length;
      const t0 = Date.now();
      lab.readdress(1, 60 + (k % 100));
      // The stall's end: of the gaps that end after the change, the longest (a loaded machine
      // also makes short ones), once echoes have flowed for a second after it. Bounded: a tunnel
      // that never resumes fails the figure.
      const end = t0 + 15_000;
      let stall: [number, number] | undefined;
      for (;;) {
        for (const l of out.slice(seen)) {
          if (l.startsWith('error ')) throw new Error(`pinger: ${l}`);
          const m = /^gap (\d+) (\d+)$/.exec(l);
          if (!m || Number(m[2]) <= t0) continue;
          const g: [number, number] = [Number(m[1]), Number(m[2])];
          if (!stall || g[1] - g[0] > stall[1] - stall[0]) stall = g;
        }
        if (stall && Date.now() > stall[1] + 1000) break;
        if (Date.now() > end) throw new Error(`no echo within 15 s of address change ${k + 1}`);
        await sleep(50);
      }
      recoveries.push(stall[1] - t0);
    }
    const rtts = out.map((l) => /^rtt (\d+)$/.exec(l)).filter((m) => m !== null).map((m) => Number(m[1]));
    const rows: Row[] = [
      { id: 'tunnel/ferry-sealed/address-change-rtt', system: 'ferry-sealed', what: 'round trip of one byte through the sealed tunnel between network namespaces (pinger, every 5 ms)', unit: 'ms', summary: summarize(rtts) },
      { id: 'tunnel/ferry-sealed/address-change-recovery', system: 'ferry-sealed', what: `from the serving host's address change (ip addr del + add) to the next echoed byte, ${changes} changes`, unit: 'ms', summary: summarize(recoveries), note: 'includes up to one ADDRESS_POLL_MS (200 ms) before the host notices; the address-change-rtt row is the same run' },
    ];
    return { rows, changes };
  } finally {
    for (const c of kids) c.stdin?.end();
    lab.destroy();
  }
}
