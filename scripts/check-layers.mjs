// Enforces the layering of src/ (STYLE.md §4) on every import, so a shortcut shows up in CI and not
// in a review months later:
//
//   util ← identity ← wire ← control ← {connection, location} ← host ← agent ← cli
//
// - A module imports only its own layer or layers to its left; connection and location never
//   import each other.
// - Across layers, only through the target's index.js (`../identity/index.js`, not
//   `../identity/keys.js`); inside a layer, anything.
// - testing/ may import any layer but cli/; only testing/ and cli/ may import testing/.
// - Only adapters touch the network: node:dgram and node:net may be imported only under
//   control/, host/, testing/, cli/, and by connection/ adapter files (a name ending in
//   `adapter.ts`, or a file under connection/adapters/).
// - connection/core/ is sans-I/O, and so are the pure files of connection/ it imports (CORE_PURE):
//   they may not name a timer or deferral (setTimeout, setInterval, setImmediate, queueMicrotask and
//   their clear*), a clock (Date.now, new Date(), performance, process.hrtime), a random source
//   (Math.random, randomBytes, randomUUID, getRandomValues) or an escape hatch (process, globalThis,
//   global, require), written as `a.b` or `a['b']`; nor import node:net, node:dgram, node:timers,
//   node:crypto, node:fs, node:module, node:child_process, node:worker_threads, node:perf_hooks or
//   node:http(s) (time comes in as `now`, randomness through an injected source); inside connection/
//   they import only core/ and CORE_PURE (never the endpoint, the sockets or the index).
// - cli/ alone may reach out of src/, and only to the bench runner (`../../bench/run.js`): the
//   bench and its dev-only baselines live outside the package and are loaded on demand.
// - A file directly under src/ is the package entry: it may import any layer but testing/ and cli/,
//   through index.js; only cli/ may import it.
//
// Imports are read with the TypeScript parser: static `import`/`export … from`, `import x =
// require()`, `import('…')` calls and `import('…')` types. Type-only imports count: a type from a
// higher layer is still a dependency on it.
//
//   node scripts/check-layers.mjs      exit 0 and "layers ok (N files)", or 1 and the violations
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');

/** Layer ranks, left to right. Equal rank, different layer: neither may import the other. */
const RANK = { util: 0, identity: 1, wire: 2, control: 3, connection: 4, location: 4, host: 5, agent: 6, cli: 7 };
const ENTRY = '(entry)'; // files directly under src/
const TESTING = 'testing';
const IGNORED = new Set(['bench']);
/** The one file outside src/ that cli/ may import (`ferry bench` loads it on demand). */
const BENCH_RUNNER = '../bench/run.js';
const NETWORK = new Set(['node:dgram', 'dgram', 'node:net', 'net']);
const NETWORK_LAYERS = new Set(['control', 'host', TESTING, 'cli']);

/** The sans-I/O core of a connection (issue 11): no clock, timer, deferral, socket or randomness of its own. */
const CORE_DIR = 'connection/core/';
const CORE_BANNED_IMPORTS = new Set(
  ['net', 'dgram', 'timers', 'timers/promises', 'crypto', 'fs', 'fs/promises', 'module', 'child_process', 'worker_threads', 'perf_hooks', 'http', 'https', 'http2', 'tls', 'dns'].flatMap((m) => [m, `node:${m}`]),
);
/** Identifiers a sans-I/O file may not name at all (as a value, a call or an object). */
const CORE_BANNED_NAMES = new Set([
  'setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'clearTimeout', 'clearInterval', 'clearImmediate',
  'randomBytes', 'randomUUID', 'randomFillSync', 'getRandomValues', 'systemClock', 'performance', 'process', 'globalThis', 'global', 'require',
]);
/** `object.member` pairs it may not name, also written `object['member']`. */
const CORE_BANNED_MEMBERS = new Set(['Date.now', 'Math.random']);
/** Files of connection/ outside core/ that the core may import: pure ones (tables, buffers, codecs). */
const CORE_PURE = new Set(['connection/state-machine.js', 'connection/data-path.js', 'connection/checkpoint.js']);

/** Where a core file names a clock, a timer, a deferral or a random source, by line. */
function bannedNamesOf(file, text) {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out = [];
  const line = (node) => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
  const literal = (node) => (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) ? node.text : undefined);
  const visit = (node) => {
    if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression)) {
      const name = `${node.expression.text}.${node.name.text}`;
      if (CORE_BANNED_MEMBERS.has(name)) out.push({ name, line: line(node) });
      if (CORE_BANNED_NAMES.has(node.name.text)) out.push({ name, line: line(node) });
    } else if (ts.isElementAccessExpression(node) && literal(node.argumentExpression) !== undefined) {
      // x['setTimeout'], Date['now']: the same names, spelled to slip past a reader.
      const member = literal(node.argumentExpression);
      const name = ts.isIdentifier(node.expression) ? `${node.expression.text}.${member}` : `[${member}]`;
      if (CORE_BANNED_MEMBERS.has(name) || CORE_BANNED_NAMES.has(member)) out.push({ name, line: line(node) });
    } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'Date') {
      out.push({ name: 'new Date', line: line(node) });
    } else if (ts.isIdentifier(node) && CORE_BANNED_NAMES.has(node.text) && !(ts.isPropertyAccessExpression(node.parent) && node.parent.name === node)) {
      out.push({ name: node.text, line: line(node) });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** All .ts files under `dir`, as paths relative to src/ with forward slashes, sorted. */
function listTs(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...listTs(full));
    else if (name.endsWith('.ts')) out.push(relative(SRC, full).split(sep).join('/'));
  }
  return out;
}

/** The layer of a path relative to src/. */
function layerOf(rel) {
  const i = rel.indexOf('/');
  return i < 0 ? ENTRY : rel.slice(0, i);
}

/** A connection/ file allowed to touch sockets. */
const isConnectionAdapter = (rel) => /^connection\/(.*\/)?[^/]*adapter\.ts$/.test(rel) || rel.startsWith('connection/adapters/');

/** Every module specifier a file imports, with its line; computed specifiers are reported apart. */
function importsOf(file, text) {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = [];
  const dynamic = [];
  const line = (node) => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
  const literal = (node) => (node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) ? node.text : undefined);
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      const s = literal(node.moduleSpecifier);
      if (s !== undefined) found.push({ spec: s, line: line(node) });
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const s = literal(node.moduleReference.expression);
      if (s !== undefined) found.push({ spec: s, line: line(node) });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const s = literal(node.arguments[0]);
      if (s !== undefined) found.push({ spec: s, line: line(node) });
      else dynamic.push({ line: line(node) });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      const s = literal(node.argument.literal);
      if (s !== undefined) found.push({ spec: s, line: line(node) });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return { found, dynamic };
}

/** Why `from` (a layer) may not import `to` (a layer), or undefined when it may. */
function layerRule(from, to) {
  if (from === to) return undefined;
  if (to === TESTING) return from === 'cli' ? undefined : 'only testing/ and cli/ may import testing/';
  if (from === TESTING) return to === 'cli' ? 'testing/ may import any layer but cli/' : undefined;
  if (to === ENTRY) return from === 'cli' ? undefined : 'only cli/ may import the package entry';
  if (from === ENTRY) return to === 'cli' ? 'the package entry may not import cli/' : undefined;
  if (!(from in RANK)) return `src/${from}/ is not a known layer (add it to RANK in scripts/check-layers.mjs)`;
  if (!(to in RANK)) return `src/${to}/ is not a known layer (add it to RANK in scripts/check-layers.mjs)`;
  if (RANK[to] === RANK[from]) return `${from}/ and ${to}/ never import each other`;
  if (RANK[to] > RANK[from]) return `${from}/ may not import ${to}/, a layer above it`;
  return undefined;
}

const files = listTs(SRC).filter((rel) => !IGNORED.has(layerOf(rel)));
const violations = [];
const warnings = [];

for (const rel of files) {
  const from = layerOf(rel);
  if (from !== ENTRY && from !== TESTING && !(from in RANK)) {
    violations.push(`src/${rel}: src/${from}/ is not a known layer (add it to RANK in scripts/check-layers.mjs)`);
    continue;
  }
  const text = readFileSync(join(SRC, rel), 'utf8');
  const { found, dynamic } = importsOf(rel, text);
  const inCore = rel.startsWith(CORE_DIR);
  const sansIo = inCore || CORE_PURE.has(rel.replace(/\.ts$/, '.js'));
  if (sansIo) {
    for (const { name, line } of bannedNamesOf(rel, text)) {
      violations.push(`src/${rel}:${line}: uses '${name}': connection/core/ and the pure files it imports take time as \`now\` and randomness from an injected source`);
    }
  }
  for (const d of dynamic) {
    if (sansIo) violations.push(`src/${rel}:${d.line}: import() with a computed specifier: connection/core/ imports only what can be checked`);
    else warnings.push(`src/${rel}:${d.line}: import() with a computed specifier is not checked`);
  }
  for (const { spec, line } of found) {
    const where = `src/${rel}:${line}: imports '${spec}'`;
    if (sansIo && CORE_BANNED_IMPORTS.has(spec)) {
      violations.push(`${where}: connection/core/ is sans-I/O (no sockets, timers or randomness of its own)`);
      continue;
    }
    if (NETWORK.has(spec)) {
      if (!NETWORK_LAYERS.has(from) && !isConnectionAdapter(rel)) {
        violations.push(`${where}: only control/, host/, testing/, cli/ and connection/ adapter files may touch the network`);
      }
      continue;
    }
    if (!spec.startsWith('.')) continue; // other packages: not a layering question
    const target = posix.normalize(posix.join(posix.dirname(rel), spec));
    if (from === 'cli' && target === BENCH_RUNNER) continue;
    if (target === '..' || target.startsWith('../')) {
      violations.push(`${where}: resolves outside src/`);
      continue;
    }
    const to = layerOf(target);
    if (inCore && to === 'connection' && !target.startsWith(CORE_DIR) && !CORE_PURE.has(target)) {
      violations.push(`${where}: connection/core/ imports only core/ and the pure files of connection/ (${[...CORE_PURE].join(', ')})`);
      continue;
    }
    if (IGNORED.has(to)) {
      violations.push(`${where}: src/ may not import ${to}/`);
      continue;
    }
    const why = layerRule(from, to);
    if (why) {
      violations.push(`${where}: ${why}`);
      continue;
    }
    if (to !== from && to !== ENTRY && target !== `${to}/index.js`) {
      violations.push(`${where}: cross-layer imports go through ${to}/index.js`);
    }
  }
}

for (const w of warnings) console.error(`check-layers: warning: ${w}`);
if (violations.length > 0) {
  console.error(`check-layers: ${violations.length} violation${violations.length === 1 ? '' : 's'} (layer order: util ← identity ← wire ← control ← {connection, location} ← host ← agent ← cli)`);
  for (const v of violations) console.error(`  ${v}`);
  process.exit(1);
}
console.log(`layers ok (${files.length} files)`);
