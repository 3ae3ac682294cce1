/**
 * The real PostgreSQL parser (libpg-query, compiled to WASM), loaded once per process and shared
 * by every classifier. Parsing is synchronous; outcomes are values, never exceptions.
 *
 * Why the instance can be replaced: a statement whose parse tree is deep enough overflows the
 * JavaScript stack inside the WASM code (RangeError). The C code is then unwound without its
 * cleanup, and the instance is left corrupt: later parses fail with "memory access out of
 * bounds", or never return (seen with libpg-query 18.1.5 on Node 20). So any failure that is not
 * the parser's own error report retires the instance for good; a fresh one is instantiated in
 * the background from the package's ESM build under a unique URL (a new module record, hence a
 * new WASM instance), and until it is ready parses answer `unavailable`. The classifier's
 * lexer-level guard keeps such inputs away in the first place; this is the second line.
 */
import * as bundled from 'libpg-query';

/** The part of libpg-query's API used here. */
interface Engine {
  loadModule(): Promise<void>;
  parseSync(sql: string): unknown;
}

export type ParseOutcome =
  /** One parse-tree node per statement, in the JSON shape of libpg-query (`{ stmt: { SelectStmt: … } }`). */
  | { readonly kind: 'parsed'; readonly stmts: readonly unknown[] }
  /** The parser rejected the text (syntax error, or its own "memory exhausted" limit on nesting). */
  | { readonly kind: 'rejected'; readonly message: string }
  /** The parser failed abnormally; this instance is retired and a fresh one is loading. */
  | { readonly kind: 'crashed'; readonly message: string }
  /** No instance is ready: never loaded, or a replacement is still loading. */
  | { readonly kind: 'unavailable' };

let engine: Engine | null = null;
let loading: Promise<void> | null = null;
let instances = 0;
let crashes = 0;
let lastLoadError: unknown = null;

/** Loads the parser if no instance is ready; concurrent callers share one load. */
export function loadParser(): Promise<void> {
  if (engine !== null) return Promise.resolve();
  loading ??= instantiate().finally(() => {
    loading = null;
  });
  return loading;
}

async function instantiate(): Promise<void> {
  try {
    const next = instances === 0 ? (bundled as Engine) : await freshEngine(instances);
    await next.loadModule();
    engine = next;
    instances++;
    lastLoadError = null;
  } catch (err) {
    lastLoadError = err;
    lastLoadFailureAt = performance.now();
    throw err;
  }
}

/** A new module record of libpg-query's ESM build, whose top level instantiates its own WASM. */
async function freshEngine(n: number): Promise<Engine> {
  const url = new URL('./index.js', import.meta.resolve('libpg-query'));
  url.searchParams.set('pgscale-instance', String(n));
  const mod: unknown = await import(url.href);
  if (!isEngine(mod)) throw new Error('libpg-query ESM build has no loadModule/parseSync');
  return mod;
}

function isEngine(mod: unknown): mod is Engine {
  if (typeof mod !== 'object' || mod === null) return false;
  const m = mod as Record<string, unknown>;
  return typeof m.loadModule === 'function' && typeof m.parseSync === 'function';
}

/** After a failed load, how long `parseStatements` waits before it tries loading again. */
const RELOAD_BACKOFF_MS = 5000;
let lastLoadFailureAt = -Infinity;

export function parseStatements(sql: string): ParseOutcome {
  const current = engine;
  if (current === null) {
    // Nobody awaited loadParser() (a classifier built with `new`), or a replacement failed:
    // start a load in the background, at most once per back-off period after a failure.
    if (loading === null && performance.now() - lastLoadFailureAt >= RELOAD_BACKOFF_MS) {
      loadParser().catch(() => undefined);
    }
    return { kind: 'unavailable' };
  }
  let tree: unknown;
  try {
    tree = current.parseSync(sql);
  } catch (err) {
    if (isParserReport(err)) return { kind: 'rejected', message: err.message };
    retire(current);
    return { kind: 'crashed', message: describe(err) ?? 'unknown failure' };
  }
  const stmts = (tree as { stmts?: unknown } | null)?.stmts;
  return { kind: 'parsed', stmts: Array.isArray(stmts) ? (stmts as unknown[]) : [] };
}

/**
 * The parser's own error reports: SqlError (syntax errors, "memory exhausted" from the grammar's
 * stack limit) and the wrapper's plain Errors for empty input. Checked by name because every
 * instance has its own SqlError class.
 */
function isParserReport(err: unknown): err is Error {
  return err instanceof Error && (err.name === 'SqlError' || Object.getPrototypeOf(err) === Error.prototype);
}

function retire(broken: Engine): void {
  if (engine !== broken) return;
  engine = null;
  crashes++;
  // Errors are kept in lastLoadError for parserStatus(); parses answer `unavailable` meanwhile.
  loadParser().catch(() => undefined);
}

export interface ParserStatus {
  readonly ready: boolean;
  /** WASM instances created so far (1 after the first load). */
  readonly instances: number;
  /** Instances retired after an abnormal failure. */
  readonly crashes: number;
  readonly lastLoadError: string | null;
}

export function parserStatus(): ParserStatus {
  return {
    ready: engine !== null,
    instances,
    crashes,
    lastLoadError: describe(lastLoadError),
  };
}

function describe(err: unknown): string | null {
  if (err === null || err === undefined) return null;
  return err instanceof Error
    ? `${err.name}: ${err.message}`
    : typeof err === 'string'
      ? err
      : 'non-Error thrown';
}
