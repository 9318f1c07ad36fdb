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
  MAX_FRAME_PAYLOAD: { value: 64 * 1024, unit: 'bytes', why: 'Largest DATA payload per frame; checked before allocation. 64 KiB amortises the per-frame AEAD call.' },
  CONTROL_MIN_RTO_MS: { value: 25, unit: 'ms', why: 'Floor of the retransmission timeout; loopback RTTs are sub-millisecond, mosh uses 50 ms on real paths.' },
  CONTROL_MAX_RTO_MS: { value: 1000, unit: 'ms', why: 'Cap of the exponential backoff so a long outage still probes every second.' },
  CONTROL_INITIAL_RTO_MS: { value: 100, unit: 'ms', why: 'RTO before any RTT sample (RFC 6298 says 1 s; control peers here are near).' },
  CONTROL_MAX_TRIES: { value: 8, unit: 'sends', why: 'A request fails with FERRY_ERR_CONTROL_TIMEOUT after this many sends (~3 s at the cap).' },
  CONTROL_MAX_PENDING: { value: 4096, unit: 'requests', why: 'Outstanding requests per host; beyond it a request fails at once with FERRY_ERR_LIMIT_EXCEEDED.' },
  CONTROL_REPLY_CACHE_ENTRIES: { value: 8192, unit: 'replies', why: 'Cached replies for duplicate suppression; oldest evicted first.' },
  CONTROL_REPLY_CACHE_TTL_MS: { value: 30_000, unit: 'ms', why: 'Longer than a requester\'s whole retry schedule, so a late duplicate still gets the cached reply.' },
  SEND_BUDGET_BYTES: { value: 1024 * 1024, unit: 'bytes', why: 'Unacknowledged bytes a sender keeps per connection; write() returns false beyond it. Also the most a move carries per direction.' },
  RECEIVE_WINDOW_BYTES: { value: 1024 * 1024, unit: 'bytes', why: 'Bytes a receiver accepts beyond what the application has read; announced to the peer.' },
  MAX_CONNECTIONS: { value: 20_000, unit: 'connections', why: 'Connections per host; the 10 000-connection scale goal fits with room.' },
  MAX_HALF_OPEN: { value: 1024, unit: 'handshakes', why: 'Server-side opens awaiting key confirmation; caps the state a CONNECT flood can create.' },
  HANDSHAKE_TIMEOUT_MS: { value: 5000, unit: 'ms', why: 'An open (three control messages and the data socket) must finish within this.' },
  HELLO_TIMEOUT_MS: { value: 5000, unit: 'ms', why: 'The redirector closes a TCP socket that names no connection within this.' },
  DRAIN_TIMEOUT_MS: { value: 1000, unit: 'ms', why: 'On suspend, how long to wait for the peer\'s end of stream before closing the data socket anyway (offsets make it safe).' },
  RECONNECT_LIMIT_MS: { value: 30_000, unit: 'ms', why: 'A broken connection retries resume this long before failing with FERRY_ERR_PEER_UNREACHABLE.' },
  RESUME_RETRY_MS: { value: 50, unit: 'ms', why: 'First pause between resume attempts after a failure; doubles up to CONTROL_MAX_RTO_MS.' },
  PEER_MOVE_WAIT_MS: { value: 10_000, unit: 'ms', why: 'How long a resuming end waits for a peer in transit to land before it keeps retrying normally.' },
  FORWARDING_HINT_TTL_MS: { value: 60_000, unit: 'ms', why: 'How long an old host remembers where a moved connection went.' },
  AMPLIFICATION_FACTOR: { value: 3, unit: 'x', why: 'Before a new address is validated, send at most 3x the bytes received from it (RFC 9000 §8).' },
  MAX_REPLAY_WINDOW: { value: 1, unit: 'counter', why: 'Connection control counters must strictly increase; only an exact retransmission of the last one is answered from cache.' },
  CONTROL_MAX_INCOMING: { value: 4096, unit: 'requests', why: 'Peer requests handed to handlers and not yet answered; beyond it new ones are dropped unanswered (the sender retransmits), capping the state a request flood creates.' },
  CONTROL_RTT_PEERS: { value: 4096, unit: 'peers', why: 'Peer addresses whose measured RTT is remembered; least recently used forgotten first (it restarts at CONTROL_INITIAL_RTO_MS).' },
} as const satisfies Record<string, LimitSpec>;

/** The value of a limit. */
export function limit(name: keyof typeof LIMITS): number {
  return LIMITS[name].value;
}
