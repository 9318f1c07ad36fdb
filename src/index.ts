/**
 * `ferry`: the package's public surface. Hosts and their agents' sockets, the agent runtime with
 * owner credentials and host policy, location services (in-process table, rendezvous server and
 * client), errors and limits. Chosen by hand: codecs, handshake builders, data sockets and the
 * control channel are internals and stay unexported, so they can change without breaking users.
 *
 * Agent code imports `ferry/agent`; in-memory fakes for tests are in `ferry/testing`.
 */

// Hosts, moves and the sockets agents hold.
export { Host, parseMigrationTarget, formatMigrationTarget } from './host/index.js';
export type { HostOptions, MigrateOptions, MigrationTarget, MigrationReport, MemberOutcome, AgentCheckpoint } from './host/index.js';
export { AgentSocket, AgentServerSocket } from './connection/index.js';
export type { State as ConnectionState } from './connection/index.js';

// The confined agent runtime, owner credentials and host policy.
export { AgentRuntime, CodeStore, channelHost, inProcessHost } from './host/index.js';
export type { RuntimeHost, RuntimeOptions, AgentHandle, AgentExit, ExitReason, InProcessDirectory } from './host/index.js';
export { parsePolicy, readPolicyFile, DENY_ALL_POLICY, codeHashOf, credentialToText, credentialFromText } from './host/index.js';
export type { HostPolicy, PolicyRule, PolicyLimits, ConnectGrant, AgentCredential, CredentialRights, OwnerId } from './host/index.js';
export { issueCredential, ownerIdOf, DEFAULT_CREDENTIAL_VALIDITY_MS } from './agent/index.js';
export type { IssueOptions } from './agent/index.js';

// Identities.
export { Identity, parseId } from './identity/index.js';
export type { AgentId, HostId } from './identity/index.js';

// Where agents are.
export { MemoryLocationTable, RendezvousClient, RendezvousServer, MemoryStore, RedisStore } from './location/index.js';
export type { LocationService, LocationEntry, LocationStore, StoreListener, RendezvousClientOptions, RendezvousServerOptions, MemoryStoreOptions, RedisStoreOptions } from './location/index.js';

// Errors, limits, logging.
export { FerryError, isFerryError, isAbortError, ERRORS, LIMITS, createLogger, silentLogger } from './util/index.js';
export type { ErrorCode, Blame, Logger, LoggerOptions, LogLevel, LogFields, RefusalFields } from './util/index.js';
