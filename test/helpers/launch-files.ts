/**
 * What `ferry launch` needs on disk, for process tests: a temp directory with an owner key's
 * policy (allowAll) and, per agent, its module (a fixture), credential and key file. One place
 * for the set-up the launch, stop and move tests of `ferry host` processes share.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCredential } from '../../src/agent/index.js';
import { credentialToText } from '../../src/host/index.js';
import { Identity } from '../../src/identity/index.js';
import { allowAll, fixture } from './agents.js';

/** One agent's files: `args` are what follows `ferry launch` (module, --credential, --agent-key). */
export interface LaunchFiles {
  agent: Identity;
  args: string[];
}

/** A temp directory holding the policy and the agents' files. */
export interface LaunchDir {
  dir: string;
  owner: Identity;
  /** The policy file (allowAll for `owner`): `ferry host --policy`. */
  policy: string;
  /**
   * Write fixture `fixtureName` as `NAME.mjs` (NAME defaults to the fixture's name), its
   * credential with `rights` (default listen) and its key; `agent` defaults to a fresh key.
   */
  agentFiles(fixtureName: string, opts?: { name?: string; rights?: Record<string, unknown>; agent?: Identity }): Promise<LaunchFiles>;
  /** Remove the directory (for `after`). */
  remove(): Promise<void>;
}

/** Make a {@link LaunchDir} under the system temp directory (`prefix` names it). */
export async function launchDir(prefix: string): Promise<LaunchDir> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const owner = Identity.generate();
  const policy = join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify(allowAll(owner)));
  return {
    dir,
    owner,
    policy,
    async agentFiles(fixtureName, opts = {}) {
      const agent = opts.agent ?? Identity.generate();
      const name = opts.name ?? fixtureName.replace(/\.mjs$/, '');
      const code = fixture(fixtureName);
      const [mod, cred, key] = [`${name}.mjs`, `${name}.cred`, `${name}.key`].map((f) => join(dir, f)) as [string, string, string];
      await writeFile(mod, code);
      await writeFile(cred, credentialToText(issueCredential(owner, { agent, code, rights: opts.rights ?? { listen: true } })) + '\n');
      await writeFile(key, agent.seed().toString('hex') + '\n', { mode: 0o600 });
      return { agent, args: [mod, '--credential', cred, '--agent-key', key] };
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
