/**
 * Hosts with their own addresses: one network namespace per host, joined by veth pairs to a
 * bridge in a "switch" namespace (10.231.N.0/24, a range only these namespaces use). Needs root
 * and iproute2 (CI runs as root). Everything is created under a per-process prefix (`fn` and the
 * process id) and removed by destroy(); what a killed process left behind is removed by the next
 * create(). Used by the process-level tests and by `ferry bench --netns`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

/**
 * Why this process may not create namespaces, or undefined when it may (root, and `ip netns`
 * works).
 */
export function netnsUnavailableReason(): string | undefined {
  if (process.getuid?.() !== 0) return `network namespaces need root (this process runs as uid ${process.getuid?.() ?? 'unknown'})`;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: ['ignore', 'ignore', 'pipe'] });
    return undefined;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') return "network namespaces need iproute2's `ip` command, which is not installed (apt-get install iproute2)";
    return `\`ip netns list\` failed: ${e.stderr?.toString().trim() || e.message}`;
  }
}

/** Whether this process may create namespaces (root and iproute2 present). */
export function netnsAvailable(): boolean {
  return netnsUnavailableReason() === undefined;
}

/** Whether process `pid` exists (EPERM: it does, owned by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Options of {@link NetnsLab.spawnNode}. */
export interface SpawnNodeOptions {
  /**
   * 'pipe' gives the child a stdin that ends when this process dies, however it dies (a child
   * can exit on its 'end' so that nothing outlives a killed parent); default 'ignore'.
   */
  stdin?: 'pipe' | 'ignore';
}

/** A set of namespaces, each with one address on a shared bridge. */
export class NetnsLab {
  readonly names: string[] = [];
  readonly ips: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly sw: string;
  private destroyed = false;

  private constructor(private readonly prefix: string) {
    this.sw = `${prefix}sw`;
  }

  /**
   * Create `n` host namespaces. Their names start with `fn` and this process's id; namespaces of
   * labs whose process is gone (killed before it could clean up) are removed first.
   */
  static create(n: number): NetnsLab {
    NetnsLab.sweep();
    const lab = new NetnsLab(`fn${process.pid}`);
    const subnet = `10.231.${process.pid % 250}`;
    try {
      ip('netns', 'add', lab.sw);
      ip('-n', lab.sw, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', lab.sw, 'link', 'set', 'br0', 'up');
      for (let i = 0; i < n; i++) {
        const ns = `${lab.prefix}h${i}`;
        const inner = `${lab.prefix}v${i}`;
        const outer = `${lab.prefix}p${i}`;
        ip('netns', 'add', ns);
        lab.names.push(ns);
        ip('link', 'add', inner, 'type', 'veth', 'peer', 'name', outer);
        ip('link', 'set', inner, 'netns', ns);
        ip('link', 'set', outer, 'netns', lab.sw);
        ip('-n', lab.sw, 'link', 'set', outer, 'master', 'br0');
        ip('-n', lab.sw, 'link', 'set', outer, 'up');
        const addr = `${subnet}.${10 + i}`;
        ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', inner);
        ip('-n', ns, 'link', 'set', inner, 'up');
        ip('-n', ns, 'link', 'set', 'lo', 'up');
        lab.ips.push(addr);
      }
    } catch (err) {
      lab.destroy();
      throw err;
    }
    return lab;
  }

  /** Remove the namespaces of labs whose creating process no longer exists. */
  static sweep(): void {
    let list: string;
    try {
      list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return;
    }
    for (const line of list.split('\n')) {
      const m = /^(fn(\d+)(?:sw|h\d+))(?:\s|$)/.exec(line);
      if (!m || alive(Number(m[2]))) continue;
      try {
        ip('netns', 'del', m[1]!);
      } catch {
        // another sweep got there first
      }
    }
  }

  /**
   * Re-address namespace `i` as a laptop that changes networks: its address is removed (its
   * sockets bound there stall, its routes go) and `10.231.N.<host>` takes its place on the same
   * link. Returns the new address, also in `ips[i]`.
   */
  readdress(i: number, host: number): string {
    const dev = `${this.prefix}v${i}`;
    const old = this.ips[i]!;
    const next = `${old.slice(0, old.lastIndexOf('.'))}.${host}`;
    ip('-n', this.names[i]!, 'addr', 'del', `${old}/24`, 'dev', dev);
    ip('-n', this.names[i]!, 'addr', 'add', `${next}/24`, 'dev', dev);
    this.ips[i] = next;
    return next;
  }

  /** Spawn `node args…` inside namespace `i`. */
  spawnNode(i: number, args: string[], options: SpawnNodeOptions = {}): ChildProcess {
    if (this.destroyed) throw new Error('NetnsLab destroyed');
    const child = spawn('ip', ['netns', 'exec', this.names[i]!, process.execPath, ...args], { stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    // A failed spawn reports here; the 'exit' that follows is what callers wait on.
    child.once('error', () => {});
    return child;
  }

  /** Run `node args…` inside namespace `i` to completion; resolves with stdout. */
  runNode(i: number, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const child = this.spawnNode(i, args);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    return new Promise((resolve) => child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr })));
  }

  /** Kill children and remove every namespace and link this lab made (idempotent, synchronous). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.children) c.kill('SIGKILL');
    this.children.clear();
    for (const ns of [...this.names, this.sw]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
  }
}

/** Resolve with the first line of `child`'s stdout that matches `re`. */
export function lineMatching(child: ChildProcess, re: RegExp, ms = 10_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; stderr: ${err.slice(-500)}`)), ms);
    child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      reject(new Error(`exited (${signal ?? `status ${code}`}) before a line matching ${re}; stderr: ${err.slice(-500)}`));
    });
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      for (const line of buf.split('\n')) {
        const m = re.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m);
          return;
        }
      }
    });
  });
}
