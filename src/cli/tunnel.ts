/**
 * `ferry tunnel`: run one tunnel end as a process. Wires a host of its own, the tunnel agent (its
 * key file), a rendezvous client (or, for `serve`, an embedded rendezvous) and a {@link TunnelEnd};
 * no logic of its own (docs/TUNNEL.md).
 */
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { Host, TunnelEnd, parseTcpAddress, sendBudgetOf, type TcpAddress } from '../host/index.js';
import { Identity, type AgentId } from '../identity/index.js';
import { MemoryStore, RendezvousClient, RendezvousServer } from '../location/index.js';
import { createLogger, keepFreedMemory, limit, type Logger } from '../util/index.js';
import { hostAddress } from './host-address.js';
import { loadOrCreateKey } from './host.js';

/** Usage text of `ferry tunnel`. */
export const TUNNEL_HELP = `ferry tunnel — any TCP program over Ferry connections that survive cuts

Usage:
  ferry tunnel serve --key FILE --to HOST:PORT (--allow AGENT_ID… | --allow-any) [options]
      a tunnel end whose agent (key FILE) accepts Ferry connections from the allowed agents and
      dials HOST:PORT for each (the far side of ssh -L)
  ferry tunnel connect AGENT_ID --key FILE --rendezvous IP:PORT --listen HOST:PORT [options]
      listen on HOST:PORT here; each TCP client becomes one Ferry connection to the serving end
      AGENT_ID (as ssh -L)
  ferry tunnel connect AGENT_ID --key FILE --rendezvous IP:PORT --remote-listen HOST:PORT --to HOST:PORT
      ask AGENT_ID (a serve end run with --allow-remote-listen) to listen on HOST:PORT on its side;
      each client there is tunnelled back here and dialled to --to (as ssh -R)
  ferry tunnel id --key FILE
      print the agent id of a key file (created if missing): what the other end names or allows

Options:
  --key FILE              the tunnel agent's key (32-byte Ed25519 seed, hex; created mode 0600
                          if missing). Its id is the tunnel end's name
  --rendezvous IP:PORT    the rendezvous both ends register with; serve embeds one without it
  --rendezvous-port N     port of the embedded rendezvous (serve, default 0)
  --ip IP                 address of this end's host (control UDP, redirector TCP; default
                          127.0.0.1)
  --ip auto               a roaming end (a laptop): bind every address, register the host's
                          external IPv4 address, and when it changes re-register and resume
                          every connection from the new one (use an external --rendezvous)
  --advertise-port N      tell peers to reach this end's redirector (TCP) at port N of its
                          address, not at the port it listens on: it sits behind a TCP port
                          forward or proxy
  --allow AGENT_ID        (serve) an agent that may open streams here; repeat, or comma-separate
  --allow-any             (serve) any agent may (with --no-security anyone at all)
  --allow-remote-listen   (serve) allowed agents may also ask this end to listen (-R): on a
                          loopback address, port 0 or 1024 and up, at most 16 per agent
  --gateway-ports         (serve) such a listener may bind any address of this host, not only
                          loopback (ssh's GatewayPorts yes)
  --no-security           plain handshakes and frames: no signatures, no sealing; peer ids are
                          then claims, not proofs (both ends must say it)
  --send-budget SIZE      most bytes this end's streams together hold for their peers, sent
                          and not yet acknowledged (the streams with one peer address a quarter of it, each stream
                          at least 64 KiB); a stream beyond its share stops reading its TCP side
                          until its peer acknowledges. SIZE in bytes, or with KiB, MiB or GiB
                          (default 256MiB)
  --verbose               every host log line on stderr (default: tunnel warnings only)
  -h, --help              this text

Examples (as ssh -L 6380:127.0.0.1:6379 server, for a Redis next to the server):
  laptop$ ferry tunnel id --key c.key            # prints CLIENT_ID
  server$ ferry tunnel serve --key s.key --to 127.0.0.1:6379 --allow CLIENT_ID \\
              --ip SERVER_IP --rendezvous-port 7400   # prints its agent id, SERVE_ID
  laptop$ ferry tunnel connect SERVE_ID --key c.key --rendezvous SERVER_IP:7400 \\
              --listen 127.0.0.1:6380 --ip auto
  laptop$ redis-cli -p 6380                       # survives cuts and the laptop changing networks
As ssh -R 8080:127.0.0.1:3000 server (the serve end run with --allow-remote-listen):
  laptop$ ferry tunnel connect SERVE_ID --key c.key --rendezvous SERVER_IP:7400 \\
              --remote-listen 127.0.0.1:8080 --to 127.0.0.1:3000

Exit status: 0 after SIGINT/SIGTERM; 2 when it cannot start: a bad option, a --listen address
that is in use or does not resolve (FERRY_ERR_TUNNEL_LISTEN), a peer that refuses -R
(FERRY_ERR_TUNNEL_REFUSED); 1 on any other error, such as a rendezvous that does not answer
(FERRY_ERR_CONTROL_TIMEOUT). Either way one line on stderr names the code.
SIGUSR2 prints one line of counters on stdout ('ferry tunnel stats: active=… held=…'),
as dd does on SIGUSR1 (which Node keeps for its debugger).

Prints one line "ferry tunnel ready: …" on stdout when it serves; warnings (a refused target, a
reset, a denied agent) are JSON lines on stderr, each with a stable code. SIGINT/SIGTERM stop it.`;

type Fail = (msg: string) => never;

/** "65536", "64KiB", "256MiB", "1GiB" in bytes; undefined if not such a size. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d{1,12})(KiB|MiB|GiB)?$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * (m[2] === 'GiB' ? 1024 ** 3 : m[2] === 'MiB' ? 1024 ** 2 : m[2] === 'KiB' ? 1024 : 1);
}

/**
 * A tunnel end's heap is small (about 8 MB live) while bytes stream through it: every TCP read and
 * every AEAD call allocates a fresh buffer, so V8 scavenges every 32 MiB of them, and its
 * incremental marking, which starts long before the old generation's limit, then ran a full
 * mark-compact every 30-60 MiB carried, marking on every spare thread: about a quarter of a sealed
 * tunnel end's CPU (docs/BENCHMARKS.md, 2026-12-06). Without incremental marking a full
 * collection runs only when the old generation reaches its limit (about once per 500 MiB here),
 * in one pause (31-70 ms at a load average of 18 on two cores; the incremental cycles' own final
 * pauses were 3-80 ms there). Set at start, before any connection (v8.setFlagsFromString; V8
 * reads the flag whenever marking could start). It also keeps freed memory for reuse
 * (util/malloc.ts).
 */
function tuneHeapForRelaying(): void {
  setFlagsFromString('--no-incremental-marking');
  keepFreedMemory();
}

/** Run `ferry tunnel`; resolves with the exit status after a signal. */
export async function tunnelMain(argv: string[], fail: Fail): Promise<number> {
  const [mode, ...rest] = argv;
  if (!mode || mode === '--help' || mode === '-h' || mode === 'help') {
    process.stdout.write(TUNNEL_HELP + '\n');
    return 0;
  }
  if (mode !== 'serve' && mode !== 'connect' && mode !== 'id') fail(`tunnel: unknown mode '${mode}' (serve, connect or id)`);
  if (mode !== 'id') tuneHeapForRelaying();
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      allowPositionals: mode === 'connect',
      options: {
        key: { type: 'string' },
        to: { type: 'string' },
        listen: { type: 'string' },
        'remote-listen': { type: 'string' },
        allow: { type: 'string', multiple: true },
        'allow-any': { type: 'boolean' },
        'allow-remote-listen': { type: 'boolean' },
        'gateway-ports': { type: 'boolean' },
        rendezvous: { type: 'string' },
        'rendezvous-port': { type: 'string' },
        ip: { type: 'string' },
        'advertise-port': { type: 'string' },
        'no-security': { type: 'boolean' },
        'send-budget': { type: 'string' },
        verbose: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(TUNNEL_HELP + '\n');
    return 0;
  }
  if (typeof values.key !== 'string') fail('tunnel: --key FILE is required (the tunnel agent\'s key; created if missing)');
  const agent = await loadOrCreateKey(values.key, fail);
  if (mode === 'id') {
    process.stdout.write(agent.id + '\n');
    return 0;
  }
  const addr = (name: string): TcpAddress | undefined => {
    const v = values[name];
    if (typeof v !== 'string') return undefined;
    try {
      return parseTcpAddress(v);
    } catch (err) {
      fail(`--${name}: ${(err as Error).message}`);
    }
  };
  const isId = (s: string): boolean => /^[0-9a-f]{32}$/.test(s);
  const to = addr('to');
  const listen = addr('listen');
  const remoteListen = addr('remote-listen');
  const allowList = ((values.allow as string[] | undefined) ?? []).flatMap((s) => s.split(',')).filter((s) => s.length > 0);
  for (const id of allowList) if (!isId(id)) fail(`--allow: '${id}' is not an agent id (32 hex digits; 'ferry tunnel id --key FILE' prints one)`);
  let peer: AgentId | undefined;
  if (mode === 'serve') {
    if (!to) fail('tunnel serve: --to HOST:PORT is required (what each stream is dialled to)');
    if (allowList.length === 0 && !values['allow-any']) fail('tunnel serve: say who may connect: --allow AGENT_ID (repeatable) or --allow-any');
    if (listen || remoteListen) fail('tunnel serve: --listen and --remote-listen belong to tunnel connect');
  } else {
    if (positionals.length !== 1 || !isId(positionals[0]!)) fail('tunnel connect: name the serving end by its agent id (32 hex digits)');
    peer = positionals[0] as AgentId;
    if (typeof values.rendezvous !== 'string') fail('tunnel connect: --rendezvous IP:PORT is required (where the serving end is registered)');
    if (!listen === !remoteListen) fail('tunnel connect: give exactly one of --listen HOST:PORT (as ssh -L) or --remote-listen HOST:PORT with --to (as ssh -R)');
    if (remoteListen && !to) fail('tunnel connect: --remote-listen needs --to HOST:PORT (where the clients it brings back are dialled here)');
    if (listen && to) fail('tunnel connect: --to goes with --remote-listen (with --listen the serving end holds the target)');
    if (allowList.length > 0 || values['allow-any'] || values['allow-remote-listen'] || values['gateway-ports']) fail('tunnel connect: --allow… and --gateway-ports belong to tunnel serve (connect only talks to the agent it names)');
  }

  const log: Logger = createLogger(values.verbose ? 'info' : 'warn', { tunnel: agent.id.slice(0, 8) });
  const hostLog: Logger = values.verbose ? log : createLogger('error');
  // A roaming end binds the wildcard and follows its address (docs/TUNNEL.md "A host that changes
  // its address"), once the host exists.
  const address = hostAddress(typeof values.ip === 'string' ? values.ip : undefined, '127.0.0.1', hostLog, fail);
  const { ip, roaming } = address;
  const bindIp = address.bind;
  let embedded: RendezvousServer | undefined;
  let rendezvous = typeof values.rendezvous === 'string' ? values.rendezvous : undefined;
  if (!rendezvous) {
    const rp = Number(values['rendezvous-port'] ?? 0);
    if (!Number.isInteger(rp) || rp < 0 || rp > 65535) fail(`--rendezvous-port must be a port number, got '${String(values['rendezvous-port'])}'`);
    embedded = await RendezvousServer.start({ host: bindIp, port: rp, store: await MemoryStore.open({}), logger: values.verbose ? log : undefined });
    rendezvous = `${ip}:${embedded.address.slice(embedded.address.lastIndexOf(':') + 1)}`;
  }
  // The host key is fresh each run: peers name the tunnel agent, whose key signs the delegation
  // to whichever host runs it (docs/DELEGATION.md).
  const advertisePort = values['advertise-port'] === undefined ? undefined : Number(values['advertise-port']);
  if (advertisePort !== undefined && (!Number.isInteger(advertisePort) || advertisePort < 1 || advertisePort > 65535)) fail(`--advertise-port must be a port number (1-65535), got '${String(values['advertise-port'])}'`);
  let sendBudget: number | undefined;
  if (typeof values['send-budget'] === 'string') {
    sendBudget = parseSize(values['send-budget']);
    if (sendBudget === undefined || sendBudget < 1024 ** 2 || sendBudget > 1024 ** 4) fail(`--send-budget must be a size from 1MiB to 1024GiB (bytes, or with KiB, MiB or GiB), got '${values['send-budget']}'`);
  }
  const hostKey = Identity.generate();
  let host: Host;
  const location = await RendezvousClient.connect({ server: rendezvous, ...(roaming ? {} : { host: ip }), signer: hostKey, logger: hostLog });
  try {
    host = await Host.start({ location, identity: hostKey, ip: bindIp, advertise: ip, ...(advertisePort ? { advertiseRedirectorPort: advertisePort } : {}), security: !values['no-security'], logger: hostLog, name: `tunnel-${agent.id.slice(0, 8)}` });
  } catch (err) {
    location.close();
    await embedded?.close();
    fail(`cannot start the tunnel's host: ${(err as Error).message}`);
  }
  const allowed = new Set(allowList);
  const end = await TunnelEnd.start({
    host,
    agent,
    ...(mode === 'serve' ? { to: to! } : {}),
    allow: mode === 'serve' ? (id) => Boolean(values['allow-any']) || allowed.has(id) : () => false,
    allowRemoteListen: Boolean(values['allow-remote-listen']),
    gatewayPorts: Boolean(values['gateway-ports']),
    ...(sendBudget ? { sendBudget: sendBudgetOf(sendBudget) } : {}),
    logger: log,
  });
  const printStats = (): void => {
    const st = end.stats;
    process.stdout.write(`ferry tunnel stats: active=${st.active} opened=${st.opened} reset=${st.reset} denied=${st.denied} held=${st.held} starved=${st.starved}\n`);
  };
  process.on('SIGUSR2', printStats);
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  const budgetKiB = Math.round((limit('SEND_BUDGET_BYTES') + limit('RECEIVE_WINDOW_BYTES') + 4 * 64 * 1024) / 1024);
  address.follow(host);
  const common = `host=${host.id} control=${host.controlAddress} redirector=${ip}:${host.listeningRedirectorPort} rendezvous=${rendezvous}${embedded ? ' (embedded)' : ''} security=${values['no-security'] ? 'plain' : 'sealed'} budget=${limit('TUNNEL_MAX_STREAMS')}x${budgetKiB}KiB send-budget=${Math.round((sendBudget ?? limit('TUNNEL_SEND_BUDGET_BYTES')) / 1024)}KiB${advertisePort ? ` advertised-port=${advertisePort}` : ''}${roaming ? ' roaming' : ''}`;
  let what: string;
  try {
    if (mode === 'serve') what = `serve to=${to!.host}:${to!.port} allow=${values['allow-any'] ? 'any' : allowList.join(',')}${values['allow-remote-listen'] ? ' remote-listen' : ''}${values['gateway-ports'] ? ' gateway-ports' : ''}`;
    else if (listen) what = `connect peer=${peer} listen=${listen.host}:${await end.forward(listen, peer!)}`;
    else what = `connect peer=${peer} remote-listen=${remoteListen!.host}:${await end.reverse(remoteListen!, peer!, to!)} to=${to!.host}:${to!.port}`;
  } catch (err) {
    address.stop();
    await end.close();
    await host.close();
    location.close();
    await embedded?.close();
    const code = (err as { code?: string }).code;
    fail(`tunnel: ${code ? `${code}: ` : ''}${(err as Error).message}`);
  }
  process.stdout.write(`ferry tunnel ready: agent=${agent.id} ${what} ${common}\n`);
  await stopped;
  process.off('SIGUSR2', printStats);
  address.stop();
  await end.close();
  await host.close();
  location.close();
  await embedded?.close();
  return 0;
}
