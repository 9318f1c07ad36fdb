/**
 * One error taxonomy for all of Ferry.
 *
 * Every error Ferry raises is a {@link FerryError} with a stable string `code`. Callers match on
 * `code`, never on the message. Codes that cross the network also have a numeric `wire` value
 * carried in ERROR replies; `by` says whether the local side or the peer caused it.
 * Retired codes are never reused. `docs/ERRORS.md` is generated from {@link ERRORS}.
 */

/** Who caused an error: we did (bad local call, local limit) or the peer did (bad input). */
export type Blame = 'local' | 'peer';

interface ErrorSpec {
  /** Numeric code used on the wire (u16), or 0 when the error never crosses the network. */
  readonly wire: number;
  readonly by: Blame;
  readonly summary: string;
}

/** The registry of error codes. Append only: a retired code keeps its row with "(retired)". */
export const ERRORS = {
  // --- input from the network: codecs -------------------------------------------------
  FERRY_ERR_MALFORMED_DATAGRAM: { wire: 1, by: 'peer', summary: 'A control datagram is truncated, too long, or has a bad field.' },
  FERRY_ERR_MALFORMED_FRAME: { wire: 2, by: 'peer', summary: 'A data-socket frame is truncated, oversized, or has a bad field.' },
  FERRY_ERR_UNSUPPORTED_VERSION: { wire: 3, by: 'peer', summary: 'A datagram or frame carries a protocol version this host does not speak.' },
  FERRY_ERR_UNKNOWN_TYPE: { wire: 4, by: 'peer', summary: 'A datagram or frame has a type this host does not know.' },
  FERRY_ERR_FRAME_TOO_LARGE: { wire: 5, by: 'peer', summary: 'A frame announces a length above the limit; refused before allocation.' },
  FERRY_ERR_MALFORMED_MIGRATION_STEP: { wire: 7, by: 'peer', summary: 'A migration step body (DELEGATE, PEERS, CONNECTION_IDS, CONFIRM, CHECKPOINT_END, COMMITTED, ABORT) is not a JSON object of exactly its fields, has a field of the wrong type or range, or a list or string above its bound (PROTOCOL.md §6.7).' },
  FERRY_ERR_MALFORMED_CHECKPOINT: { wire: 6, by: 'peer', summary: 'A migrated connection checkpoint has a missing or bad field, a secret of the wrong length, non-canonical base64, or buffers beyond its budgets.' },
  // --- authentication and replay -------------------------------------------------------
  FERRY_ERR_BAD_SIGNATURE: { wire: 10, by: 'peer', summary: 'A handshake signature does not verify against the claimed identity, or a resume is not in a batch its host signed (location proof, PROTOCOL.md §4.4).' },
  FERRY_ERR_BAD_MAC: { wire: 11, by: 'peer', summary: 'A control message MAC or key confirmation does not verify under the connection key.' },
  FERRY_ERR_REPLAYED_CONTROL: { wire: 12, by: 'peer', summary: 'A SUS/RES/CLS carries a counter at or below one already accepted with a different body.' },
  FERRY_ERR_DECRYPT_FAILED: { wire: 13, by: 'peer', summary: 'A sealed frame failed AEAD authentication (tampered, or wrong key).' },
  FERRY_ERR_IDENTITY_MISMATCH: { wire: 14, by: 'peer', summary: 'A public key does not hash to the agent id it claims.' },
  FERRY_ERR_SECURITY_REQUIRED: { wire: 15, by: 'peer', summary: 'The peer offered an unauthenticated connection to a host that requires security.' },
  FERRY_ERR_PATH_UNVALIDATED: { wire: 16, by: 'peer', summary: 'A data socket did not answer the path challenge of the resume it claims.' },
  FERRY_ERR_RESUME_UNPROVEN: { wire: 17, by: 'peer', summary: 'A RES or RES_ACK came from a location where the peer has not proven itself (another control address or redirector port) without the delegation chain and host signature that prove the host speaks for the agent.' },
  FERRY_ERR_RESUME_HOST_MISMATCH: { wire: 18, by: 'peer', summary: 'A resume proof\'s delegation chain names another host than the one whose key signed the RES or RES_ACK.' },
  // --- connection and agent lookup -----------------------------------------------------
  FERRY_ERR_UNKNOWN_CONNECTION: { wire: 20, by: 'peer', summary: 'No connection with this id lives on this host.' },
  FERRY_ERR_UNKNOWN_AGENT: { wire: 21, by: 'peer', summary: 'The agent is not on this host and the location service does not know it.' },
  FERRY_ERR_NOT_LISTENING: { wire: 22, by: 'peer', summary: 'The target agent is on this host but has no server socket.' },
  FERRY_ERR_PEER_MOVING: { wire: 23, by: 'peer', summary: 'The peer endpoint is in transit between hosts; try again at its new location.' },
  FERRY_ERR_CONNECTION_ID_COLLISION: { wire: 24, by: 'peer', summary: 'A connection id half collides with one already in use on this host.' },
  FERRY_ERR_STALE_EPOCH: { wire: 26, by: 'peer', summary: 'A location update carries an epoch at or below the one registered, or a resume proof a delegation epoch below the one the peer last accepted.' },
  FERRY_ERR_REFUSED: { wire: 25, by: 'peer', summary: 'The host refused the request by policy or because a limit was reached.' },
  // --- state machine --------------------------------------------------------------------
  FERRY_ERR_ILLEGAL_TRANSITION: { wire: 30, by: 'local', summary: 'An event is not allowed in the connection state it arrived in.' },
  FERRY_ERR_CONNECTION_CLOSED: { wire: 31, by: 'local', summary: 'The operation needs an open connection and this one is closed.' },
  FERRY_ERR_PEER_ABORTED: { wire: 0, by: 'peer', summary: 'The peer destroyed the connection (CLS with reason abort); bytes it had not yet delivered are gone.' },
  FERRY_ERR_MIGRATION_ROLLED_BACK: { wire: 0, by: 'peer', summary: 'A migration failed before the destination committed; the agent runs on at the source (see the cause).' },
  FERRY_ERR_SOCKET_MOVED: { wire: 0, by: 'local', summary: 'This socket object was detached for a move; use the socket on the destination host.' },
  // --- time and limits ---------------------------------------------------------------
  FERRY_ERR_CONTROL_TIMEOUT: { wire: 0, by: 'peer', summary: 'A control request got no reply within its retransmissions or its timeoutMs; one queued behind the per-peer window can fail unsent, at its timeoutMs or when its peer is silent (PROTOCOL.md §3.3).' },
  FERRY_ERR_PEER_UNREACHABLE: { wire: 0, by: 'peer', summary: 'The peer stayed unreachable past the reconnect limit (the connection is closed), or an open could not reach its host\'s redirector.' },
  FERRY_ERR_HANDSHAKE_TIMEOUT: { wire: 0, by: 'peer', summary: 'An open did not complete (CONNECT_ACK, or control reply and data socket) within its limit.' },
  FERRY_ERR_LIMIT_EXCEEDED: { wire: 40, by: 'local', summary: 'A table or queue reached its finite limit (see docs/LIMITS.md).' },
  FERRY_ERR_BUFFER_BUDGET: { wire: 41, by: 'peer', summary: 'The peer sent beyond the receive limit it was granted.' },
  FERRY_ERR_AMPLIFICATION_LIMIT: { wire: 42, by: 'local', summary: 'A reply to an unproven address would exceed 3x the request (RFC 9000 §8); refused instead.' },
  // --- local misuse ---------------------------------------------------------------------
  FERRY_ERR_INVALID_ARGUMENT: { wire: 0, by: 'local', summary: 'An API was called with an argument of the wrong type or range.' },
  FERRY_ERR_ABORTED: { wire: 0, by: 'local', summary: 'The operation was aborted through its AbortSignal or because the host closed.' },
  FERRY_ERR_SUPERSEDED: { wire: 0, by: 'local', summary: 'A pending resumeConnection() was overtaken by a later suspend() of the same end: the connection stays suspended.' },
  FERRY_ERR_ALREADY_LISTENING: { wire: 0, by: 'local', summary: 'The agent already has a server socket on this host.' },
  FERRY_ERR_INTERNAL: { wire: 99, by: 'local', summary: 'An invariant was broken inside Ferry: a bug, please report it.' },
  // --- delegation certificates and chains (src/identity/delegation.ts, docs/DELEGATION.md) ---
  FERRY_ERR_MALFORMED_CERTIFICATE: { wire: 50, by: 'peer', summary: 'A delegation certificate or chain is truncated, has a bad field, or a window that ends before it starts.' },
  FERRY_ERR_CHAIN_TRUNCATED: { wire: 51, by: 'peer', summary: 'A delegation chain is empty or its first link is not signed by the agent key for this agent id.' },
  FERRY_ERR_CHAIN_BROKEN: { wire: 52, by: 'peer', summary: 'A delegation link is not issued by the previous subject, names another agent, or is out of order (epoch or time).' },
  FERRY_ERR_CHAIN_FORGED: { wire: 53, by: 'peer', summary: 'A delegation certificate signature does not verify under its issuer key.' },
  FERRY_ERR_CHAIN_EXPIRED: { wire: 54, by: 'peer', summary: 'A delegation is outside its validity window (or was issued after its issuer\'s ended, or is longer than allowed).' },
  FERRY_ERR_CHAIN_TOO_LONG: { wire: 55, by: 'peer', summary: 'A delegation chain has more links than MAX_CHAIN_LINKS; refused before any signature is checked.' },
  // --- agents: confinement, credentials, policy (src/host/runtime.ts, policy.ts, docs/AGENTS.md) ---
  FERRY_ERR_CONFINEMENT: { wire: 70, by: 'peer', summary: 'Agent code reached for authority outside ctx (a node: builtin, process, another module); refused inside its worker.' },
  FERRY_ERR_NO_CREDENTIAL: { wire: 71, by: 'peer', summary: 'An agent was launched or landed without an owner-signed credential.' },
  FERRY_ERR_BAD_CREDENTIAL: { wire: 72, by: 'peer', summary: 'An agent credential is malformed, its owner signature does not verify, or it names another agent key.' },
  FERRY_ERR_CREDENTIAL_EXPIRED: { wire: 73, by: 'peer', summary: 'An agent credential is outside its validity window (clock skew allowed).' },
  FERRY_ERR_CODE_HASH_MISMATCH: { wire: 74, by: 'peer', summary: 'The agent code does not hash (SHA-256) to the code hash its credential signs.' },
  FERRY_ERR_POLICY_DENIED: { wire: 75, by: 'peer', summary: 'Host policy does not grant this owner the right asked for (land, listen, connect) or the credential did not request it.' },
  FERRY_ERR_AGENT_CRASHED: { wire: 76, by: 'peer', summary: 'Agent code threw, rejected unhandled, or its worker exited unexpectedly; the agent was stopped.' },
  FERRY_ERR_AGENT_MEMORY: { wire: 77, by: 'peer', summary: 'An agent exceeded its memory limit (worker heap, or reported external memory); the agent was stopped.' },
  FERRY_ERR_AGENT_UNRESPONSIVE: { wire: 78, by: 'peer', summary: 'An agent worker did not answer a heartbeat in time (busy loop or blocked thread); the agent was stopped.' },
  FERRY_ERR_AGENT_PROTOCOL: { wire: 79, by: 'peer', summary: 'An agent worker sent the host a malformed or out-of-order message; the agent was stopped.' },
  FERRY_ERR_AGENT_ELSEWHERE: { wire: 0, by: 'local', summary: 'The agent runs on another host. A launch names an agent that is registered on another host: an agent never runs on two hosts; launch with replace (`ferry launch --replace`) to move the registration here, and the copy there is then fenced. Or a stop came while the agent was moving and the move committed first: the agent runs at its new host (the message names it); stop it there.' },
  FERRY_ERR_UNKNOWN_HOST: { wire: 0, by: 'local', summary: 'A migration target names a host by id alone, and no host with that id has registered itself at the location service (hosts do at start).' },
  FERRY_ERR_FENCED: { wire: 0, by: 'local', summary: 'This copy of an agent was stopped because another host registered the agent at a newer epoch that this host did not commit (a launch with replace elsewhere); its connections were ended.' },
  FERRY_ERR_BAD_POLICY: { wire: 0, by: 'local', summary: 'A host policy file is not valid JSON or does not match the schema (the message names the field).' },
  // --- ferry tunnel (docs/TUNNEL.md) -------------------------------------------------------
  FERRY_ERR_TUNNEL_DENIED: { wire: 0, by: 'peer', summary: 'A tunnel end refused a Ferry connection from an agent its --allow list does not name (or a LISTEN it does not permit); the connection is aborted.' },
  FERRY_ERR_TUNNEL_TARGET: { wire: 0, by: 'local', summary: 'A tunnel end could not reach its TCP target (refused, unreachable, timed out) or the target reset the stream; the tunnelled connection is aborted and the client at the other end is reset.' },
  FERRY_ERR_TUNNEL_RESET: { wire: 0, by: 'peer', summary: 'A tunnelled stream was aborted: the TCP client or target at one end reset it, or the tunnel end there could not reach its target; the TCP socket at this end is reset in turn.' },
  FERRY_ERR_TUNNEL_REFUSED: { wire: 0, by: 'peer', summary: 'The peer tunnel end refused a reverse listen (-R): not allowed there, or it cannot bind the address.' },
  FERRY_ERR_TUNNEL_LISTEN: { wire: 0, by: 'local', summary: 'A tunnel end could not listen on its --listen address: the port is in use, the address is not one of this host, the name does not resolve, or the port needs privileges; the tunnel does not start (the cause names the errno).' },
  // --- location service (src/location/, docs/PROTOCOL.md §12) ---------------------------
  FERRY_ERR_REGISTRATION_UNPROVEN: { wire: 60, by: 'peer', summary: 'A location registration carries no delegation chain, and this rendezvous requires one (or the agent\'s location was proven before).' },
  FERRY_ERR_REGISTRATION_MISMATCH: { wire: 61, by: 'peer', summary: 'A registration\'s chain names another host than the entry (last subject), or another epoch than the entry\'s.' },
  FERRY_ERR_UPLOAD_BROKEN: { wire: 62, by: 'peer', summary: 'A REGISTER_PART is out of order, for an unknown or expired upload, or disagrees with the fragments before it.' },
  FERRY_ERR_SNAPSHOT_UNREADABLE: { wire: 0, by: 'local', summary: 'The rendezvous snapshot file cannot be read or written, or is corrupt; refused at start rather than starting with an empty directory.' },
  FERRY_ERR_DIRECTORY_UNAVAILABLE: { wire: 66, by: 'peer', summary: 'The rendezvous cannot reach the shared directory (Redis down, unreachable or not answering within LOCATION_STORE_TIMEOUT_MS): nothing was stored; a registration is refused (a move rolls back) and may be retried once the directory is back.' },
  FERRY_ERR_DIRECTORY_CORRUPT: { wire: 0, by: 'local', summary: 'An entry read from the shared directory does not decode (another program wrote the key, or another version of Ferry); it is not served.' },
  FERRY_ERR_NOT_HOLDER: { wire: 67, by: 'peer', summary: 'A DEREGISTER names another host, epoch or registration than the agent\'s current entry: only the host holding the current registration may remove it. A stale deregistration (sent before a move) or a replayed one is refused, and the entry is kept.' },
} as const satisfies Record<string, ErrorSpec>;

/** A stable error code, e.g. `FERRY_ERR_REPLAYED_CONTROL`. */
export type ErrorCode = keyof typeof ERRORS;

const byWire = new Map<number, ErrorCode>();
for (const [code, spec] of Object.entries(ERRORS) as [ErrorCode, ErrorSpec][]) {
  if (spec.wire !== 0) {
    if (byWire.has(spec.wire)) throw new Error(`duplicate wire error code ${spec.wire}`);
    byWire.set(spec.wire, code);
  }
}

/** The base class of every error Ferry throws or emits. */
export class FerryError extends Error {
  /** Stable string code: match on this. */
  readonly code: ErrorCode;
  /** Who caused it. */
  readonly by: Blame;
  /** Numeric code used on the wire, 0 when local only. */
  readonly wire: number;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERRORS[code].summary, options);
    this.name = 'FerryError';
    this.code = code;
    this.by = ERRORS[code].by;
    this.wire = ERRORS[code].wire;
  }
}

/** Build the error a peer reported in an ERROR reply; unknown wire codes map to REFUSED. */
export function errorFromWire(wire: number, detail: string): FerryError {
  const code = byWire.get(wire) ?? 'FERRY_ERR_REFUSED';
  return new FerryError(code, `peer: ${detail || ERRORS[code].summary}`);
}

/** True when `err` is a FerryError, optionally with the given code. */
export function isFerryError(err: unknown, code?: ErrorCode): err is FerryError {
  return err instanceof FerryError && (code === undefined || err.code === code);
}
