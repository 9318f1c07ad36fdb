/**
 * Every buffer, queue, table and retry in Ferry has a finite default, named here with its unit
 * and the reason for its value. `docs/LIMITS.md` is generated from {@link LIMITS}.
 */

interface LimitSpec {
  readonly value: number;
  readonly unit: string;
  readonly why: string;
}

/** The limits table. Hosts may override some per instance (see `HostOptions`). */
export const LIMITS = {
  MAX_DATAGRAM_BYTES: { value: 1200, unit: 'bytes', why: 'QUIC\'s minimum path MTU payload (RFC 9000 §14): never fragmented on any sane path.' },
  MAX_FRAME_PAYLOAD: { value: 256 * 1024, unit: 'bytes', why: 'Largest DATA payload per frame (and migration checkpoint part); checked before allocation. 256 KiB amortises the per-frame cipher object, writev and ACK over 4x the bytes of 64 KiB (sealed throughput +10-20 % measured) while a 1 MiB window still holds 4 frames in flight.' },
  HANDOFF_FRAME_BYTES: { value: 16 * 1024, unit: 'bytes', why: 'Longest frame (HELLO, CONNECT, MIG_HELLO: at most 187 bytes) read from a socket that has proved nothing: a first frame at the redirector, the in-band open until CONNECT_CONFIRM (server) or CONNECT_ACK (client) verifies; with MAX_PENDING_HANDOFFS and MAX_HALF_OPEN it bounds what unvalidated sockets can make a host buffer (16 MiB each).' },
  CONTROL_MIN_RTO_MS: { value: 25, unit: 'ms', why: 'Floor of the retransmission timeout; loopback RTTs are sub-millisecond, mosh uses 50 ms on real paths.' },
  CONTROL_MAX_RTO_MS: { value: 1000, unit: 'ms', why: 'Cap of the exponential backoff so a long outage still probes every second.' },
  CONTROL_INITIAL_RTO_MS: { value: 100, unit: 'ms', why: 'RTO before any RTT sample (RFC 6298 says 1 s; control peers here are near).' },
  CONTROL_MAX_TRIES: { value: 8, unit: 'sends', why: 'A request fails with FERRY_ERR_CONTROL_TIMEOUT after this many sends (~3 s at the cap).' },
  CONTROL_MAX_PENDING: { value: 4096, unit: 'requests', why: 'Outstanding requests per host, queued or in flight; beyond it a request fails at once with FERRY_ERR_LIMIT_EXCEEDED.' },
  CONTROL_MAX_IN_FLIGHT_PER_PEER: { value: 64, unit: 'requests', why: 'Control requests to one peer address sent and unanswered (CoAP NSTART, RFC 7252 §4.7); more wait in a FIFO queue. A peer spends about 1 ms of CPU per SUS or RES, so 64 keep it busy over paths up to a 64 ms RTT; a burst of 1000 all at once had most of them wait past their RTO and be sent again (1000-connection moves on loopback: median 250 retransmissions per move instead of 1100-3900, and no RES timeouts; with a 50 ms control RTT, 2.0-2.6 s against 2.3-3.7 s, where a window of 16 took 6.7 s).' },
  CONTROL_REPLY_CACHE_ENTRIES: { value: 8192, unit: 'replies', why: 'Cached replies for duplicate suppression; oldest evicted first.' },
  CONTROL_REPLY_CACHE_TTL_MS: { value: 30_000, unit: 'ms', why: 'Longer than a requester\'s whole retry schedule, so a late duplicate still gets the cached reply.' },
  SEND_BUDGET_BYTES: { value: 1024 * 1024, unit: 'bytes', why: 'Unacknowledged bytes a sender keeps per connection; write() returns false once it is reached (a single write() chunk is accepted whole, as net.Socket does). A move carries at most this plus the last chunk and the Writable high-water mark (64 KiB).' },
  RECEIVE_WINDOW_BYTES: { value: 1024 * 1024, unit: 'bytes', why: 'Bytes a receiver accepts beyond what the application has read; announced to the peer.' },
  MAX_CONNECTIONS: { value: 20_000, unit: 'connections', why: 'Connections per host; the 10 000-connection scale goal fits with room.' },
  MAX_HALF_OPEN: { value: 1024, unit: 'handshakes', why: 'Server-side opens awaiting key confirmation; caps the state a CONNECT flood can create. When full, a verified CONNECT takes the slot of the oldest half-open of the source address holding the most (HALF_OPEN_PER_SOURCE), so a flood from one address cannot lock honest opens out.' },
  HALF_OPEN_PER_SOURCE: { value: 256, unit: 'handshakes', why: 'Half-open opens one source address may hold. Victim: every agent listening on the host, whose honest opens found MAX_HALF_OPEN full. Attacker: anyone with fresh keys who sends valid CONNECTs and never confirms. Beyond it a verified CONNECT from that address replaces its own oldest half-open (logged with FERRY_ERR_LIMIT_EXCEEDED); an honest peer host opening 256 connections at once within one RTT still fits.' },
  HANDSHAKE_TIMEOUT_MS: { value: 5000, unit: 'ms', why: 'An open (CONNECT, CONNECT_ACK, CONNECT_CONFIRM; or three control messages and the data socket) must finish within this.' },
  HELLO_TIMEOUT_MS: { value: 5000, unit: 'ms', why: 'The redirector closes a TCP socket that names no connection within this.' },
  DRAIN_TIMEOUT_MS: { value: 1000, unit: 'ms', why: 'On suspend, how long to wait for the peer\'s DRAIN (or end of stream) before closing the data socket anyway (offsets make it safe); also how long an in-band SUSPEND or RESUME waits for its answer before falling back to the SUS / RES datagram.' },
  KEPT_SOCKET_MS: { value: 30_000, unit: 'ms', why: 'How long a data socket drained by a suspend is kept for a resume on it (no new TCP connection, no HELLO); closed after that, and a later resume dials.' },
  RECONNECT_LIMIT_MS: { value: 30_000, unit: 'ms', why: 'A broken connection retries resume this long before failing with FERRY_ERR_PEER_UNREACHABLE.' },
  RESUME_RETRY_MS: { value: 50, unit: 'ms', why: 'First pause between resume attempts after a failure; doubles up to CONTROL_MAX_RTO_MS.' },
  PEER_MOVE_WAIT_MS: { value: 10_000, unit: 'ms', why: 'How long a resuming end waits for a peer in transit to land before it keeps retrying normally.' },
  FORWARDING_HINT_TTL_MS: { value: 60_000, unit: 'ms', why: 'How long an old host answers PEER_MOVING (instead of UNKNOWN_CONNECTION) for a connection that moved away; expired entries are pruned on each move.' },
  MIGRATION_STEP_TIMEOUT_MS: { value: 5000, unit: 'ms', why: 'Each step of a host-to-host migration must be answered within this, or the source rolls back.' },
  MIGRATION_GROUP_AGENTS: { value: 64, unit: 'agents', why: 'Most agents moved as one group over one migration channel; bounds the delegations a destination verifies and the admissions it holds.' },
  MAX_CHECKPOINT_BYTES: { value: 256 * 1024 * 1024, unit: 'bytes', why: 'Largest agent checkpoint a destination accepts (buffers of up to ~100 connections at the default budgets); checked as parts arrive.' },
  SOURCE_ROUTE_TTL_MS: { value: 30_000, unit: 'ms', why: 'How long a host trusts the kernel\'s answer that it would dial a destination from the host\'s own address anyway (then the dial skips the bind before connect, see host/source-routes.ts); routes change rarely.' },
  SOURCE_ROUTE_LOOKUPS: { value: 16, unit: 'lookups', why: 'Source-address questions a host has open at once (each a UDP socket for a moment); a dial to a destination not asked about yet binds, as it did before the question.' },
  SOURCE_ROUTE_ENTRIES: { value: 1024, unit: 'destinations', why: 'Destination addresses whose source-address answer a host keeps; oldest forgotten first (its dials then bind until asked again).' },
  CONTROL_SOCKET_BUFFER_BYTES: { value: 4 * 1024 * 1024, unit: 'bytes', why: 'Kernel buffers asked for the UDP control socket, so a burst of SUS/RES from many moving connections is not dropped (capped by net.core.rmem_max).' },
  REDIRECTOR_BACKLOG: { value: 4096, unit: 'connections', why: 'Listen backlog of the redirector: a thousand connections resuming at once must not overflow it (SYN drops cost a 1 s TCP retry).' },
  MAX_PENDING_HANDOFFS: { value: 1024, unit: 'sockets', why: 'Redirector sockets still waiting for their first frame (HELLO, CONNECT, MIG_HELLO), each holding at most HANDOFF_FRAME_BYTES for HELLO_TIMEOUT_MS. When full, a new socket takes the slot of the idlest socket of the source address holding the most (PENDING_HANDOFFS_PER_SOURCE), so moves and opens from other addresses still get in.' },
  PENDING_HANDOFFS_PER_SOURCE: { value: 512, unit: 'sockets', why: 'Redirector sockets one source address may hold before their first frame. Victim: the host\'s redirector, which 1,024 idle one-byte sockets used to fill so that every migration to the host rolled back. Attacker: anyone who can open TCP sockets to it. Beyond it a new socket from that address replaces its own idlest (logged with FERRY_ERR_LIMIT_EXCEEDED); a peer host resuming 512 connections at once still fits.' },
  AMPLIFICATION_FACTOR: { value: 3, unit: 'x', why: 'Before a new address is validated, send at most 3x the bytes received from it (RFC 9000 §8).' },
  CONTROL_MAX_INCOMING: { value: 4096, unit: 'requests', why: 'Peer requests handed to handlers and not yet answered; beyond it new ones are dropped unanswered (the sender retransmits), capping the state a request flood creates.' },
  CONTROL_RTT_PEERS: { value: 4096, unit: 'peers', why: 'Peer addresses whose measured RTT is remembered; least recently used forgotten first (it restarts at CONTROL_INITIAL_RTO_MS).' },
  MAX_CHAIN_LINKS: { value: 8, unit: 'links', why: 'Delegation links a verifier accepts (FERRY_ERR_CHAIN_TOO_LONG beyond): 8 Ed25519 verifies (about 1.2 ms measured) per unauthenticated CONNECT or registration, 1321 bytes encoded. Agents re-sign a 1-link chain on every landing, so only key-less delegation grows a chain.' },
  RESUME_PROOF_MAX_LINKS: { value: 6, unit: 'links', why: 'Delegation links a RES or RES_ACK proof may carry: the most that fit one control datagram with the 77-byte body, host key, signature and the batch fields of a batch of one (1181 bytes). Hosts re-root the chain at every landing, so a proof is 1 link.' },
  RESUME_BATCH_MAX_DEPTH: { value: 20, unit: 'levels', why: 'Longest audit path a RES location proof may carry, so a batch (one host signature over a Merkle tree of every RES a host sends in one turn) holds at most 2^20 leaves, checked before the path is read. 20 levels (640 bytes) still fit one datagram with a 1-link proof (996 bytes); the signer makes smaller trees where a longer chain leaves less room.' },
  RESUME_ROOT_CACHE_ENTRIES: { value: 1024, unit: 'roots', why: 'Verified batch roots (host key, tree size, root, signature) a process remembers, so the other RES of a batch skip the Ed25519 verify; one is used per host per move, oldest forgotten first.' },
  MAX_CERT_VALIDITY_MS: { value: 24 * 3600_000, unit: 'ms', why: 'Longest window one delegation may span; bounds how long a leaked certificate, or a link backdated by an expired delegate, stays usable. Holders renew before notAfter.' },
  CLOCK_SKEW_MS: { value: 60_000, unit: 'ms', why: 'Wall-clock disagreement tolerated between a certificate issuer and its verifier (both ends of a delegation window); NTP keeps hosts within milliseconds, this covers an unsynced VM.' },
  DELEGATION_VALIDITY_MS: { value: 3600_000, unit: 'ms', why: 'Default window of a delegation issued at landing: short enough that a stolen certificate dies soon, long enough that renewal (a fresh 1-link chain) is rare.' },
  AGENT_HEAP_MB: { value: 64, unit: 'MiB', why: 'Default V8 old-generation heap of an agent worker (resourceLimits); policy may set another per owner. Beyond it the worker dies with FERRY_ERR_AGENT_MEMORY.' },
  AGENT_EXTERNAL_MB: { value: 256, unit: 'MiB', why: 'ArrayBuffer memory an agent may hold outside its heap, as its worker reports on each heartbeat; V8 heap limits do not cover it (docs/AGENTS.md).' },
  AGENT_HEARTBEAT_INTERVAL_MS: { value: 500, unit: 'ms', why: 'How often the host pings each agent worker.' },
  AGENT_HEARTBEAT_TIMEOUT_MS: { value: 2000, unit: 'ms', why: 'A worker that leaves a ping unanswered this long is terminated (FERRY_ERR_AGENT_UNRESPONSIVE): long enough for a full GC of a large heap, short enough to stop a busy loop. A starting worker gets AGENT_START_GRACE_MS on top.' },
  AGENT_START_GRACE_MS: { value: 10_000, unit: 'ms', why: 'Extra heartbeat time a new worker gets until its bootstrap is up (module loading and the loader thread are slow on a loaded machine); agent code runs only after, under the normal timeout.' },
  AGENT_READ_WINDOW_BYTES: { value: 256 * 1024, unit: 'bytes', why: 'Bytes per connection the host hands a worker ahead of what agent code has read; the host keeps them until read, so a move loses none.' },
  AGENT_MAX_BUFFERED_BYTES: { value: 4 * 1024 * 1024, unit: 'bytes', why: 'Default and ceiling of the per-connection bytes the runtime buffers for an agent (written but not yet taken by the connection); credential and policy may lower it.' },
  AGENT_MAX_CONNECTIONS: { value: 1024, unit: 'connections', why: 'Default and ceiling of the connections one agent may hold; credential and policy may lower it.' },
  AGENT_STATE_BYTES: { value: 1024 * 1024, unit: 'bytes', why: 'Largest serialized ctx.state (and run() result); a move carries it in its checkpoint.' },
  AGENT_CODE_BYTES: { value: 1024 * 1024, unit: 'bytes', why: 'Largest agent module source; it is hashed, stored and sent whole.' },
  AGENT_CODE_MODULES: { value: 1024, unit: 'modules', why: 'Modules kept by the in-memory code store; the oldest is dropped first (landings carry the source again).' },
  AGENT_MAX_PER_HOST: { value: 256, unit: 'agents', why: 'Agents one runtime runs at once: each is a worker thread with its own heap and a loader thread.' },
  AGENT_PENDING_REQUESTS: { value: 64, unit: 'requests', why: 'ctx.connect/listen/migrate calls of one agent awaiting the host; more fail at once with FERRY_ERR_LIMIT_EXCEEDED.' },
  AGENT_LOG_LINE_BYTES: { value: 2048, unit: 'bytes', why: 'A ctx.log line is cut to this length before it reaches the host log.' },
  AGENT_LOG_LINES_PER_S: { value: 50, unit: 'lines/s', why: 'ctx.log lines per agent per second; extra lines are dropped and counted, so an agent cannot flood the host log.' },
  AGENT_MESSAGE_BYTES: { value: 1024 * 1024, unit: 'bytes', why: 'Largest write a worker may hand the host in one message; larger is a protocol violation (the proxy splits writes).' },
  CREDENTIAL_CONNECT_IDS: { value: 256, unit: 'ids', why: 'Agent ids a credential may list as connect targets (use "*" for any).' },
  CREDENTIAL_MAX_VALIDITY_MS: { value: 366 * 24 * 3600_000, unit: 'ms', why: 'Longest window an agent credential may span; an owner re-signs to extend it.' },
  POLICY_FILE_BYTES: { value: 1024 * 1024, unit: 'bytes', why: 'Largest host policy file read.' },
  POLICY_OWNERS: { value: 10_000, unit: 'owners', why: 'Owner rules in one host policy.' },
  // --- location service (src/location/, docs/PROTOCOL.md §12) ---
  LOCATION_MAX_ENTRIES: { value: 100_000, unit: 'agents', why: 'Agents one rendezvous directory holds; a registration for a new agent beyond it is refused with FERRY_ERR_LIMIT_EXCEEDED (updates of known agents still pass). The snapshot is rewritten whole, so a larger directory belongs in a shared store (Redis).' },
  LOCATION_SNAPSHOT_INTERVAL_MS: { value: 100, unit: 'ms', why: 'Snapshot writes are coalesced to at most one per interval (and one on close): a burst of moves costs one file write, and a crash loses at most this much.' },
  LOCATION_SNAPSHOT_MAX_BYTES: { value: 256 * 1024 * 1024, unit: 'bytes', why: 'Largest snapshot file read at start (LOCATION_MAX_ENTRIES entries with 8-link chains, hex-encoded, fit); a bigger one is refused instead of exhausting memory.' },
  LOCATION_CACHE_ENTRIES: { value: 4096, unit: 'agents', why: 'Lookups a rendezvous client caches; least recently used evicted first.' },
  LOCATION_CACHE_TTL_MS: { value: 1000, unit: 'ms', why: 'How long a cached lookup is served without asking the rendezvous; LANDED notifications and own registrations refresh it sooner, and a stale answer only costs the caller a PEER_MOVING or UNKNOWN_AGENT and a fresh lookup.' },
  LOCATION_POLL_MS: { value: 200, unit: 'ms', why: 'While a watch waits, how often the client asks again (LOOKUP, or a renewed WATCH): the bound on how late a landing is seen when its LANDED datagram was lost.' },
  WATCH_MAX_TTL_MS: { value: 30_000, unit: 'ms', why: 'Longest watch the rendezvous keeps; a watcher that still waits renews it. Longer than PEER_MOVE_WAIT_MS, so one watch covers one resume wait.' },
  WATCH_MAX_NOTIFICATIONS: { value: 4, unit: 'datagrams', why: 'LANDED notifications one watch may send (fewer if its WATCH datagram did not pay for them under AMPLIFICATION_FACTOR).' },
  WATCH_MAX_ENTRIES: { value: 16_384, unit: 'watches', why: 'Watches a rendezvous keeps in all; beyond it WATCH is answered with the location but no watch (the watcher polls). Expiry is a min-heap on the deadline and a full table refuses in O(1), so a WATCH flood into a full table costs O(log n) per WATCH.' },
  WATCH_MAX_PER_SOURCE: { value: 2048, unit: 'watches', why: 'Watches one source IP may hold (ports are free to pick), so one sender cannot fill WATCH_MAX_ENTRIES alone: it takes 8 addresses. An honest host watches one agent per connection whose peer is in transit, so 2048 moving peers at once still get LANDED; beyond that its watches are refused and it polls (LOOKUP every LOCATION_POLL_MS).' },
  WATCH_MAX_PER_AGENT: { value: 256, unit: 'watches', why: 'Watches on one agent, so one agent\'s landing costs at most this many notifications.' },
  REGISTER_MAX_BYTES: { value: 2048, unit: 'bytes', why: 'Largest REGISTER body, reassembled from REGISTER_PART fragments: an IPv6 record, the agent key, an 8-link chain (1321 B) and the host signature take 1475.' },
  REGISTER_MAX_PARTS: { value: 4, unit: 'fragments', why: 'Most REGISTER_PART fragments of one REGISTER (2 are needed for REGISTER_MAX_BYTES).' },
  REGISTER_MAX_UPLOADS: { value: 256, unit: 'uploads', why: 'REGISTER_PART reassemblies in progress on a rendezvous (at most REGISTER_MAX_BYTES each, 512 KiB in all); beyond it a first fragment is refused with FERRY_ERR_LIMIT_EXCEEDED.' },
  REGISTER_UPLOAD_TTL_MS: { value: 5000, unit: 'ms', why: 'An unfinished REGISTER_PART reassembly is dropped this long after its first fragment; an honest sender finishes within a few RTTs.' },
  RELAY_MAX_INFLIGHT: { value: 256, unit: 'requests', why: 'RELAYed CONNECTs a rendezvous forwards at once; beyond it RELAY is refused with FERRY_ERR_LIMIT_EXCEEDED (the client falls back to LOOKUP and a direct CONNECT).' },
  RELAY_TIMEOUT_MS: { value: 2000, unit: 'ms', why: 'How long a rendezvous waits for the host it relayed to; below the requester\'s own retry schedule, so the requester hears why.' },
  HOST_START_WAIT_MS: { value: 15_000, unit: 'ms', why: 'How long an operator command (ferry launch, ls, migrate…) waits for a host that is still starting (no host.json in its data directory yet), so a script can start a host in the background and use it at once; a directory where no host starts fails after it.' },
} as const satisfies Record<string, LimitSpec>;

/** The value of a limit. */
export function limit(name: keyof typeof LIMITS): number {
  return LIMITS[name].value;
}
