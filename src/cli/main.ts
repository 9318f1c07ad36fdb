#!/usr/bin/env node
/**
 * The `ferry` command: parses arguments and wires parts; no logic lives here.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatVerdict, runDemo } from './demo.js';
import { formatVerdict as formatConnectionsVerdict, runDemo as runConnectionsDemo } from './demo-connections.js';
import { benchMain } from './bench.js';
import { rendezvousMain } from './rendezvous.js';
import { hostMain } from './host.js';
import { formatErrorChain, launchMain, logsMain, lsMain, migrateMain, stopMain } from './admin.js';
import { credentialMain, keygenMain, policyMain } from './keys.js';
import { tunnelMain } from './tunnel.js';

const HELP = `ferry — mobile agents whose connections travel with them

Usage:
  ferry demo [options]      a rendezvous and three host processes on loopback; a ring of five
                            confined agents streams checksummed data both ways while they
                            migrate alone, two at once, two co-located as one group, all five
                            at once, and once to a host that is down (rolled back); prints
                            progress and a verdict
  ferry bench [options]     the paper's evaluation against raw TCP, TLS 1.3 and js-libp2p in
                            one run (--quick, --suite NAME, --json, --out DIR; see bench --help)
  ferry rendezvous [opts]   the location service on one UDP port (--port, --host,
                            --snapshot FILE, --allow-unproven; see rendezvous --help)
  ferry host [options]      run a host process (key, ports, rendezvous, policy, admin endpoint;
                            see host --help)
  ferry ls [--data-dir DIR] a running host's agents and connections
  ferry migrate AGENT TARGET  move an agent to another host (see migrate --help)
  ferry launch MODULE.mjs --credential FILE --agent-key FILE [--replace] [--data-dir DIR]
                            launch an agent module on a host run with --policy
                            (see launch --help)
  ferry stop AGENT [--kill] stop an agent: gracefully, or at once (see stop --help)
  ferry logs [--follow]     a host's agent log lines and agent events (see logs --help)
  ferry keygen FILE         make a key file (an owner's or an agent's); prints its id
  ferry credential MODULE.mjs --owner-key FILE --agent-key FILE [--listen] [--connect IDS|*]
                            sign a credential: this agent key may run this code
  ferry policy init --owner-key FILE
                            write a host policy that admits that owner's agents
  ferry tunnel serve|connect|id  any TCP program over Ferry connections that survive cuts:
                            forward (as ssh -L) and reverse (as ssh -R); see tunnel --help
  ferry help                this text
  ferry --version           the version of this ferry

First agent: see "Your first agent" in README.md.

Demo options:
  --bytes N                 bytes over the ring's ten directions together
                            (default 41943040 = 40 MiB, 4 MiB per direction)
  --rounds N                rounds of moves spread over the stream, each: one agent alone,
                            two neighbours at once, two co-located agents as one group, the
                            whole ring at once (default 2)
  --seconds N               how long the agents take to stream (they pace themselves; default 8)
  --no-security             plain handshake and frames (to measure the cost of security)
  --json                    end the output with one JSON line holding the verdict
  --verbose                 the hosts' structured logs on stderr
  --store URL               keep the directory in Redis (redis://HOST:PORT[/DB]), served by
                            two rendezvous nodes; each host lists both (failover, and watches
                            that cross nodes)
  --redis-server            the same over a throwaway redis-server this demo starts and removes
  --attack                  while the ring streams and moves, an attacker in the demo process
                            opens connections from fresh keys that send 2 bytes and vanish,
                            sends garbage datagrams to the hosts and the rendezvous, garbage
                            and slowloris sockets to the redirectors; the verdict must stay
                            exact, and the report adds what was sent and how it was refused
  --in-process              the connection-level demo instead: no agent code, two endpoints
                            hop between three hosts in this process (--bytes per direction,
                            --moves N: A alone, B alone, both at once, repeated; default 9)
  -h, --help                this text

Exit status: 0 only when every stream was verified exactly once and every planned move
committed (and the planned rollback rolled back).`;

function fail(msg: string): never {
  process.stderr.write(`ferry: ${msg}\n(see 'ferry help', or 'ferry COMMAND --help')\n`);
  process.exit(2);
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') {
    // package.json sits three levels above this file, in the repository and in an installed package.
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`ferry ${pkg.version} (node ${process.versions.node})\n`);
    return 0;
  }
  if (cmd === 'bench') return benchMain(rest, fail);
  if (cmd === 'rendezvous') return rendezvousMain(rest, fail);
  if (cmd === 'host') return hostMain(rest, fail);
  if (cmd === 'ls') return lsMain(rest, fail);
  if (cmd === 'migrate') return migrateMain(rest, fail);
  if (cmd === 'launch') return launchMain(rest, fail);
  if (cmd === 'stop') return stopMain(rest, fail);
  if (cmd === 'logs') return logsMain(rest, fail);
  if (cmd === 'keygen') return keygenMain(rest, fail);
  if (cmd === 'credential') return credentialMain(rest, fail);
  if (cmd === 'policy') return policyMain(rest, fail);
  if (cmd === 'tunnel') return tunnelMain(rest, fail);
  if (cmd !== 'demo') fail(`unknown command '${cmd}'`);
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        bytes: { type: 'string' },
        moves: { type: 'string' },
        rounds: { type: 'string' },
        seconds: { type: 'string' },
        'in-process': { type: 'boolean' },
        'no-security': { type: 'boolean' },
        json: { type: 'boolean' },
        verbose: { type: 'boolean' },
        store: { type: 'string' },
        'redis-server': { type: 'boolean' },
        attack: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.store !== undefined && values['redis-server']) fail('--store and --redis-server: give one (--redis-server starts its own Redis)');
  if ((values.store !== undefined || values['redis-server']) && values['in-process']) fail('--store and --redis-server belong to the agent demo, not --in-process');
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const num = (v: string | undefined, def: number, name: string, min: number): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer ≥ ${min}, got '${v}'`);
    return n;
  };
  const common = { security: !values['no-security'], json: Boolean(values.json), verbose: Boolean(values.verbose) };
  if (values['in-process']) {
    if (values.attack) fail('--attack runs against the agent demo, not --in-process');
    const result = await runConnectionsDemo({ ...common, bytes: num(values.bytes, 32 * 1024 * 1024, 'bytes', 1), moves: num(values.moves, 9, 'moves', 0) });
    process.stdout.write(formatConnectionsVerdict(result) + '\n');
    if (common.json) {
      const { directions: _d, seconds: _s, ...flat } = result;
      process.stdout.write(JSON.stringify({ ...flat, suspendMs: { p50: result.suspendMs.p50 }, resumeMs: { p50: result.resumeMs.p50 } }) + '\n');
    }
    return result.ok ? 0 : 1;
  }
  if (values.moves !== undefined) fail('--moves belongs to --in-process; the agent demo takes --rounds');
  const result = await runDemo({
    ...common,
    attack: Boolean(values.attack),
    bytes: num(values.bytes, 40 * 1024 * 1024, 'bytes', 10),
    rounds: num(values.rounds, 2, 'rounds', 0),
    seconds: num(values.seconds, 8, 'seconds', 1),
    ...(values.store !== undefined ? { store: values.store } : {}),
    ...(values['redis-server'] ? { redisServer: true } : {}),
  });
  process.stdout.write(formatVerdict(result) + '\n');
  if (common.json) {
    const { directions: _d, seconds: _s, problems: _p, ...flat } = result;
    process.stdout.write(JSON.stringify({ ...flat, suspendMs: { p50: result.suspendMs.p50 }, resumeMs: { p50: result.resumeMs.p50 } }) + '\n');
  }
  return result.ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`ferry: ${formatErrorChain(err)}\n`);
    process.exit(1);
  },
);
