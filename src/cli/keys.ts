/**
 * `ferry keygen`, `ferry credential` and `ferry policy init`: the files a first agent needs, made
 * from the command line (an owner key, agent keys, an owner-signed credential, a host policy).
 * Key files hold a 32-byte Ed25519 seed in hex, mode 0600; the same format for owners, agents and
 * hosts.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { issueCredential, ownerIdOf } from '../agent/index.js';
import { credentialToText, parsePolicy } from '../host/index.js';
import { Identity, parseId, type AgentId } from '../identity/index.js';
import { limit } from '../util/index.js';

type Fail = (msg: string) => never;

export const KEYGEN_HELP = `ferry keygen — make a key file (an owner's or an agent's)

Usage: ferry keygen FILE [--force]
  FILE      where to write the key: a 32-byte Ed25519 seed in hex, mode 0600
  --force   overwrite FILE if it exists (the old key, and the ids it made, are lost)

Prints the key's id (32 hex digits): an owner key's id goes into host policies, an agent key's
id is the agent's id (other agents connect to it by that id). Keep the file secret.`;

export const CREDENTIAL_HELP = `ferry credential — sign a credential: this agent key may run this code

Usage: ferry credential MODULE.mjs --owner-key FILE --agent-key FILE [options]
  MODULE.mjs                 the agent module (the credential holds its SHA-256)
  --owner-key FILE           the owner's key (from 'ferry keygen'); it signs
  --agent-key FILE           the agent's key
  --listen                   ask for ctx.listen()
  --connect IDS              agent ids it may connect to, comma-separated, or '*' for any
  --max-connections N        connections at once (default ${limit('AGENT_MAX_CONNECTIONS')})
  --max-buffered-bytes N     runtime bytes per connection (default ${limit('AGENT_MAX_BUFFERED_BYTES')})
  --hours H                  valid from now for H hours (default 24)
  --out FILE                 write it to FILE (default: stdout)

Prints the credential's text form (base64), which 'ferry launch --credential FILE' takes. A host
admits the agent only if its policy grants the owner 'land'; the agent's rights are what both
the credential asks for and the policy grants (docs/AGENTS.md).`;

export const POLICY_HELP = `ferry policy init — write a host policy that admits one or more owners

Usage: ferry policy init (--owner-key FILE | --owner ID)… [--land-only] [--out FILE]
  --owner-key FILE   an owner's key file (its id is taken from it); may repeat
  --owner ID         an owner's id (32 hex digits); may repeat
  --land-only        grant only 'land' (no listen, connect to no one)
  --out FILE         write it to FILE (default: stdout); refuses to overwrite

Each owner is granted land, listen and connect to any agent ("*"), with the default limits;
everyone else is denied. Edit the JSON to narrow it (schema in docs/AGENTS.md), and start hosts
with 'ferry host --policy FILE'.`;

/** Read a key file (32-byte Ed25519 seed, hex). */
export async function readKeyFile(file: string, what: string, fail: Fail): Promise<Identity> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    fail(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  if (!/^[0-9a-f]{64}$/i.test(text)) fail(`${what} ${file} must hold a 32-byte Ed25519 seed in hex (make one with 'ferry keygen FILE')`);
  return Identity.fromSeed(Buffer.from(text, 'hex'));
}

/** Write a new key to `file` (mode 0600); refuses to overwrite unless `force`. */
export async function writeKeyFile(file: string, identity: Identity, force: boolean, fail: Fail): Promise<void> {
  try {
    await writeFile(file, identity.seed().toString('hex') + '\n', { mode: 0o600, flag: force ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') fail(`${file} exists; pass --force to replace that key`);
    fail(`cannot write ${file}: ${(err as Error).message}`);
  }
}

async function output(text: string, out: string | undefined, fail: Fail): Promise<void> {
  if (out === undefined) {
    process.stdout.write(text);
    return;
  }
  try {
    await writeFile(out, text, { flag: 'wx' });
  } catch (err) {
    fail(`cannot write ${out}: ${(err as Error).message}`);
  }
}

function parse(argv: string[], options: NonNullable<Parameters<typeof parseArgs>[0]>['options'], fail: Fail): { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] } {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  } catch (err) {
    fail((err as Error).message);
  }
}

/** `ferry keygen FILE`. */
export async function keygenMain(argv: string[], fail: Fail): Promise<number> {
  const { values, positionals } = parse(argv, { force: { type: 'boolean' } }, fail);
  if (values.help) {
    process.stdout.write(KEYGEN_HELP + '\n');
    return 0;
  }
  const [file] = positionals;
  if (!file || positionals.length !== 1) fail('usage: ferry keygen FILE [--force]');
  const identity = Identity.generate();
  await writeKeyFile(file, identity, Boolean(values.force), fail);
  process.stdout.write(`${identity.id}\n`);
  return 0;
}

/** `ferry credential MODULE.mjs --owner-key FILE --agent-key FILE`. */
export async function credentialMain(argv: string[], fail: Fail): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      'owner-key': { type: 'string' },
      'agent-key': { type: 'string' },
      listen: { type: 'boolean' },
      connect: { type: 'string' },
      'max-connections': { type: 'string' },
      'max-buffered-bytes': { type: 'string' },
      hours: { type: 'string' },
      out: { type: 'string' },
    },
    fail,
  );
  if (values.help) {
    process.stdout.write(CREDENTIAL_HELP + '\n');
    return 0;
  }
  const [module] = positionals;
  if (!module || positionals.length !== 1) fail('usage: ferry credential MODULE.mjs --owner-key FILE --agent-key FILE [--listen] [--connect IDS|*]');
  if (typeof values['owner-key'] !== 'string') fail("credential needs --owner-key FILE: the owner's key, which signs (make one with 'ferry keygen owner.key')");
  if (typeof values['agent-key'] !== 'string') fail("credential needs --agent-key FILE: the key of the agent it admits (make one with 'ferry keygen agent.key')");
  const int = (name: string, min: number, max: number): number | undefined => {
    const v = values[name];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) fail(`--${name} must be an integer in ${min}..${max}, got '${String(v)}'`);
    return n;
  };
  let code: string;
  try {
    code = await readFile(module, 'utf8');
  } catch (err) {
    fail(`cannot read module ${module}: ${(err as Error).message}`);
  }
  const owner = await readKeyFile(values['owner-key'], 'owner key', fail);
  const agent = await readKeyFile(values['agent-key'], 'agent key', fail);
  let connect: '*' | AgentId[] = [];
  if (values.connect === '*') connect = '*';
  else if (typeof values.connect === 'string') {
    try {
      connect = values.connect.split(',').filter((x) => x.length > 0).map((x) => parseId(x));
    } catch (err) {
      fail(`--connect takes agent ids (32 hex digits) separated by commas, or '*': ${(err as Error).message}`);
    }
    if (connect.length > limit('CREDENTIAL_CONNECT_IDS')) fail(`--connect lists more than ${limit('CREDENTIAL_CONNECT_IDS')} ids; use '*'`);
  }
  const maxConnections = int('max-connections', 0, limit('AGENT_MAX_CONNECTIONS'));
  const maxBufferedBytes = int('max-buffered-bytes', 1024, limit('AGENT_MAX_BUFFERED_BYTES'));
  const hours = int('hours', 1, Math.floor(limit('CREDENTIAL_MAX_VALIDITY_MS') / 3600_000)) ?? 24;
  const now = Date.now();
  const credential = issueCredential(owner, {
    agent,
    code,
    rights: {
      listen: Boolean(values.listen),
      connect,
      ...(maxConnections === undefined ? {} : { maxConnections }),
      ...(maxBufferedBytes === undefined ? {} : { maxBufferedBytes }),
    },
    notBefore: now,
    notAfter: now + hours * 3600_000,
  });
  await output(credentialToText(credential) + '\n', typeof values.out === 'string' ? values.out : undefined, fail);
  return 0;
}

/** `ferry policy init`. */
export async function policyMain(argv: string[], fail: Fail): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(POLICY_HELP + '\n');
    return 0;
  }
  if (sub !== 'init') fail(`usage: ferry policy init (--owner-key FILE | --owner ID)… [--out FILE] (unknown subcommand '${sub ?? ''}')`);
  const { values, positionals } = parse(
    rest,
    { 'owner-key': { type: 'string', multiple: true }, owner: { type: 'string', multiple: true }, 'land-only': { type: 'boolean' }, out: { type: 'string' } },
    fail,
  );
  if (values.help) {
    process.stdout.write(POLICY_HELP + '\n');
    return 0;
  }
  if (positionals.length > 0) fail(`policy init takes no positional arguments, got '${positionals.join(' ')}'`);
  const owners: string[] = [];
  for (const f of (values['owner-key'] ?? []) as string[]) owners.push(ownerIdOf(await readKeyFile(f, 'owner key', fail)));
  for (const id of (values.owner ?? []) as string[]) {
    try {
      owners.push(parseId(id));
    } catch (err) {
      fail(`--owner takes an owner id (32 hex digits): ${(err as Error).message}`);
    }
  }
  if (owners.length === 0) fail("policy init needs an owner: --owner-key FILE or --owner ID (make a key with 'ferry keygen owner.key')");
  const rule = values['land-only'] ? { land: true } : { land: true, listen: true, connect: '*' };
  const policy = { version: 1, owners: Object.fromEntries(owners.map((id) => [id, rule])), default: null };
  parsePolicy(policy); // what we write must load
  await output(JSON.stringify(policy, null, 2) + '\n', typeof values.out === 'string' ? values.out : undefined, fail);
  return 0;
}
