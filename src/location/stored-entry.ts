/**
 * The codec of one directory entry as a shared store keeps it (the value of an agent's Redis key,
 * and the body of the change messages nodes publish to each other). Versioned and strict: the
 * store is shared, so a node never trusts what another process wrote through a cast.
 *
 * Layout (big-endian):
 *
 * | bytes | field |
 * |---|---|
 * | 1 | version (1) |
 * | 4 | epoch (u32): at offset 1, so the compare-and-set script reads it without decoding the rest |
 * | 16 | agent id |
 * | 16 | host id |
 * | 1 + 4/16 | IP length and IP |
 * | 2 + 2 | control port, redirector port |
 * | 1 | flags: 0x01 agent key, 0x02 chain |
 * | 32 | agent key (flag 0x01) |
 * | rest | delegation chain (flag 0x02; docs/DELEGATION.md, chain layout) |
 *
 * A 1-link entry is 245 bytes (IPv4); the entry keeps its chain, so any node can answer a
 * lookup with the proof the registering host gave.
 */
import { FerryError } from '../util/index.js';
import { decodeChain, encodeChain, idFromBytes, idToBytes, ID_BYTES } from '../identity/index.js';
import { Reader, Writer, ipFromBytes, ipToBytes } from '../wire/index.js';
import type { LocationEntry } from './table.js';

/** Version byte of {@link encodeStoredEntry}. */
export const STORED_ENTRY_VERSION = 1;
/** Offset of the u32 epoch in an encoded entry (read by the compare-and-set script). */
export const STORED_ENTRY_EPOCH_OFFSET = 1;
/** Offset of the 16-byte host id in an encoded entry (read by the compare-and-delete script). */
export const STORED_ENTRY_HOST_OFFSET = STORED_ENTRY_EPOCH_OFFSET + 4 + ID_BYTES;
const FLAG_KEY = 0x01;
const FLAG_CHAIN = 0x02;
const AGENT_KEY_BYTES = 32;
const C = 'FERRY_ERR_DIRECTORY_CORRUPT' as const;

/** Encode `e` for the store. */
export function encodeStoredEntry(e: LocationEntry): Buffer {
  const ip = ipToBytes(e.ip);
  const w = new Writer()
    .u8(STORED_ENTRY_VERSION)
    .u32(e.epoch)
    .fixed(idToBytes(e.agent), ID_BYTES, 'agent')
    .fixed(idToBytes(e.hostId), ID_BYTES, 'hostId')
    .u8(ip.length)
    .bytes(ip)
    .u16(e.controlPort)
    .u16(e.redirectorPort)
    .u8((e.agentKey ? FLAG_KEY : 0) | (e.chain ? FLAG_CHAIN : 0));
  if (e.agentKey) w.fixed(e.agentKey, AGENT_KEY_BYTES, 'agentKey');
  if (e.chain) w.bytes(encodeChain(e.chain));
  return w.finish();
}

/**
 * Decode an entry read from the store, strictly.
 *
 * @throws FerryError `FERRY_ERR_DIRECTORY_CORRUPT` for anything but a whole, valid entry (chain
 *   decoding errors are wrapped, their code in the message).
 */
export function decodeStoredEntry(b: Buffer): LocationEntry {
  const r = new Reader(b, C);
  const v = r.u8('version');
  if (v !== STORED_ENTRY_VERSION) throw new FerryError(C, `stored entry version ${v}, expected ${STORED_ENTRY_VERSION}`);
  const epoch = r.u32('epoch');
  const agent = idFromBytes(r.bytes(ID_BYTES, 'agent'));
  const hostId = idFromBytes(r.bytes(ID_BYTES, 'hostId')) as string;
  const ipLen = r.u8('ipLength');
  if (ipLen !== 4 && ipLen !== 16) throw new FerryError(C, `IP length ${ipLen}`);
  const ip = ipFromBytes(r.bytes(ipLen, 'ip'));
  const controlPort = r.u16('controlPort');
  const redirectorPort = r.u16('redirectorPort');
  if (controlPort === 0 || redirectorPort === 0) throw new FerryError(C, 'port 0 in a stored entry');
  const flags = r.u8('flags');
  if (flags & ~(FLAG_KEY | FLAG_CHAIN)) throw new FerryError(C, `flags ${flags}`);
  if (flags & FLAG_CHAIN && !(flags & FLAG_KEY)) throw new FerryError(C, 'a chain without the agent key');
  const base = { agent, hostId, ip, controlPort, redirectorPort, epoch };
  const agentKey = flags & FLAG_KEY ? Buffer.from(r.bytes(AGENT_KEY_BYTES, 'agentKey')) : undefined;
  if (!(flags & FLAG_CHAIN)) {
    r.end('stored entry');
    return agentKey ? { ...base, agentKey } : base;
  }
  const rest = r.rest();
  let chain;
  try {
    const d = decodeChain(rest, 0);
    if (d.bytes !== rest.length) throw new FerryError(C, `${rest.length - d.bytes} bytes after the chain`);
    chain = d.value;
  } catch (err) {
    if ((err as FerryError).code === C) throw err;
    throw new FerryError(C, `stored chain: ${(err as FerryError).code ?? ''} ${(err as Error).message}`, { cause: err });
  }
  return { ...base, agentKey: agentKey!, chain };
}
