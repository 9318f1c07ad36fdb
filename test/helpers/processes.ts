/**
 * Test support for `ferry` child processes: spawn one and wait (bounded) for its ready line, run
 * one-shot commands, stop or kill them, read the agents' ctx.log lines from the hosts' --verbose
 * stderr, and clean everything up after the file's tests.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { agentLogTexts, sleep } from './agents.js';

/** The compiled `ferry` entry point. */
export const FERRY_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** A spawned `ferry` process and what it printed so far. */
export interface Proc {
  child: ChildProcessWithoutNullStreams;
  out: () => string;
  err: () => string;
  /** The match of the ready line. */
  ready: RegExpExecArray;
}

/** The environment of every child: never an inherited test fault. */
export function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.FERRY_TEST_FAULT;
  return env;
}

/** Poll `probe` (bounded) until it returns something; fails early if `child` exits. */
export async function poll<T>(probe: () => T | null | undefined, ms: number, what: () => string, child?: ChildProcessWithoutNullStreams): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== null && v !== undefined) return v;
    if (child && child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${what()}`);
    if (Date.now() > end) throw new Error(`within ${ms} ms: ${what()}`);
    await sleep(10);
  }
}

/** The children of one test file; `killAll()` belongs in its `after()`. */
export class Processes {
  private readonly children = new Set<ChildProcessWithoutNullStreams>();

  private spawn(args: string[], env: NodeJS.ProcessEnv): ChildProcessWithoutNullStreams {
    const child = spawn(process.execPath, [FERRY_MAIN, ...args], { stdio: 'pipe', env });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Spawn `ferry ARGS` and wait (bounded) for a stdout line matching `ready`. */
  async start(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = baseEnv()): Promise<Proc> {
    const child = this.spawn(args, env);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const m = await poll(() => ready.exec(out), 10_000, () => `no ready line; stderr: ${err.slice(-2000)}`, child);
    return { child, out: () => out, err: () => err, ready: m };
  }

  /** Run a one-shot `ferry ARGS`; resolves with its exit code and output. */
  async run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
    const child = this.spawn(args, baseEnv());
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    return { code, out, err };
  }

  /** The ids `ferry ls` lists for the host in `dir`, sorted. */
  async lsIds(dir: string): Promise<string[]> {
    const r = await this.run(['ls', '--json', '--data-dir', dir]);
    assert.equal(r.code, 0, r.err);
    return (JSON.parse(r.out) as { agents: { id: string }[] }).agents.map((a) => a.id).sort();
  }

  killAll(): void {
    for (const c of this.children) c.kill('SIGKILL');
  }
}

/** SIGTERM and wait; resolves with the exit code (null, and a note, if a signal ended it). */
export async function stop(p: Proc): Promise<number | null> {
  if (p.child.exitCode !== null) return p.child.exitCode;
  const exited = once(p.child, 'exit') as Promise<[number | null, string | null]>;
  p.child.kill('SIGTERM');
  const [code, signal] = await exited;
  if (code === null) console.log(`# process ended by signal ${signal}`);
  return code;
}

/** SIGKILL and wait until it is gone. */
export async function kill(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = once(p.child, 'exit');
  p.child.kill('SIGKILL');
  await exited;
}

/** ctx.log texts in the hosts' --verbose stderr. */
export function agentLogs(hosts: Proc[]): string[] {
  return agentLogTexts(hosts.map((h) => h.err()));
}

/** Wait (bounded) until some agent log text matches `re` (and `ok`); returns the match. */
export function waitLog(hosts: Proc[], re: RegExp, ms = 10_000, ok: (m: RegExpExecArray) => boolean = () => true): Promise<RegExpExecArray> {
  return poll(
    () => {
      for (const t of agentLogs(hosts)) {
        const m = re.exec(t);
        if (m && ok(m)) return m;
      }
      return undefined;
    },
    ms,
    () => `no agent log matching ${re}; got:\n${agentLogs(hosts).join('\n')}`,
  );
}

/**
 * A UDP port on 127.0.0.1 that nothing listens on now (bound, then closed): for a rendezvous that
 * must not answer, or one a test restarts on the same port.
 */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  return port;
}
