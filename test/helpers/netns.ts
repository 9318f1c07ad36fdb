/**
 * Test hosts with their own addresses: one network namespace per host, joined by veth pairs to a
 * bridge in a "switch" namespace (10.231.N.0/24, a range only these namespaces use). Needs root
 * (CI runs as root). Everything is created under a per-process prefix and removed by destroy().
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

/** Whether this process may create namespaces (root and iproute2 present). */
export function netnsAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A set of namespaces, each with one address on a shared bridge. */
export class NetnsLab {
  readonly names: string[] = [];
  readonly ips: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly sw: string;

  private constructor(private readonly prefix: string) {
    this.sw = `${prefix}sw`;
  }

  /** Create `n` host namespaces. */
  static create(n: number): NetnsLab {
    const tag = (process.pid % 9000) + 100;
    const lab = new NetnsLab(`fy${tag}`);
    const subnet = `10.231.${tag % 250}`;
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

  /** Spawn `node args…` inside namespace `i`. */
  spawnNode(i: number, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.names[i]!, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
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

  /** Kill children and remove every namespace and link this lab made. */
  destroy(): void {
    for (const c of this.children) c.kill('SIGKILL');
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
