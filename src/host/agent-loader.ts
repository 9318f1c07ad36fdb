/**
 * ESM loader hooks for one agent worker, registered by `agent-worker.ts` with `module.register()`
 * after the bootstrap has loaded everything it needs. From then on, every module resolution in
 * the worker — static `import`, `import()`, `import()` inside `eval` or `new Function`,
 * `import.meta.resolve` — comes through {@link resolve}, which admits exactly two specifiers:
 *
 * - `ferry-agent:<sha256>`: the agent module itself, served from memory and re-hashed here;
 * - `ferry/agent`: the SDK (`defineAgent`), a module with no imports and no authority.
 *
 * Everything else is refused at resolution, before linking, so a static
 * `import { readFileSync } from 'node:fs'` fails with FERRY_ERR_CONFINEMENT rather than a link-time
 * SyntaxError: `node:` builtins and bare builtins (`fs`), relative and absolute file paths (agent
 * code is one module identified by its hash, so it has no neighbours to import), `data:` URLs
 * (they would only re-enter this hook), packages, and anything the loader thread is asked later.
 *
 * Verified on Node 20.20: hooks registered inside a worker apply to that worker only; the main
 * thread and other workers keep the default loader. Errors thrown here reach the importing code as
 * an `Error` whose `name` ('FerryError') and `code` survive the trip from the loader thread.
 *
 * This file runs on the worker's loader thread, which has full Node authority; it never runs agent
 * code and takes nothing from it but specifier strings.
 */
import { createHash } from 'node:crypto';

interface LoaderData {
  code: string;
  codeHash: string;
  sdkUrl: string;
}

let data: LoaderData | undefined;

/** Called once by `register()` with the agent's code and the SDK location. */
export function initialize(d: LoaderData): void {
  data = d;
}

interface ResolveResult {
  url: string;
  format?: string;
  shortCircuit?: boolean;
}

function confinement(specifier: string): Error {
  const shown = JSON.stringify(specifier.length > 200 ? `${specifier.slice(0, 200)}…` : specifier);
  const e = new Error(`agent code may not import ${shown}: an agent's only authority is its ctx (see docs/AGENTS.md)`) as Error & { code: string };
  e.name = 'FerryError';
  e.code = 'FERRY_ERR_CONFINEMENT';
  return e;
}

/** Admit the agent module and the SDK; refuse everything else with FERRY_ERR_CONFINEMENT. */
export function resolve(specifier: string, _context: unknown, _next: unknown): ResolveResult {
  if (!data) throw confinement(specifier);
  if (specifier === `ferry-agent:${data.codeHash}`) return { url: specifier, format: 'module', shortCircuit: true };
  if (specifier === 'ferry/agent') return { url: data.sdkUrl, format: 'module', shortCircuit: true };
  throw confinement(specifier);
}

interface LoadResult {
  format: string;
  source?: string | Uint8Array;
  shortCircuit?: boolean;
}

/** Serve the agent module from memory (after checking its hash again); the SDK from disk. */
export async function load(url: string, context: unknown, next: (url: string, context: unknown) => Promise<LoadResult>): Promise<LoadResult> {
  if (!data) throw confinement(url);
  if (url === `ferry-agent:${data.codeHash}`) {
    // Defense in depth: the runtime hashed this source already; a mismatch here is a bug.
    if (createHash('sha256').update(data.code, 'utf8').digest('hex') !== data.codeHash) {
      const e = new Error('agent code does not match its hash') as Error & { code: string };
      e.name = 'FerryError';
      e.code = 'FERRY_ERR_CODE_HASH_MISMATCH';
      throw e;
    }
    return { format: 'module', source: data.code, shortCircuit: true };
  }
  if (url === data.sdkUrl) return next(url, context);
  throw confinement(url);
}
