/**
 * `npm run test:regress`: PostgreSQL's own regression suite (pg_regress, parallel schedule, the
 * server's exact minor version) run directly against a server, then through a standalone
 * `pgscale proxy` in session mode and in transaction mode, each mode on a fresh single-node server
 * of the project's own cluster code (so that no run inherits another's leftovers). It prints per
 * mode the tests passed and failed and which tests fail through the proxy but not directly, saves
 * every failing test's diff under --out (one directory per mode), and writes the numbers as JSON.
 * A measurement, not a gate: it exits 0 when every mode ran, whatever failed; 1 when a mode could
 * not run at all. The sources are fetched and regress.so built once (bench/regress-source.ts).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { availableParallelism, cpus } from 'node:os';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { repoRoot } from '../test/harness.js';
import { cleanEnv } from '../src/cluster/run-as.js';
import { parseConfig } from '../src/config/load.js';
import { proxySchema } from '../src/config/schema.js';
import { runMain } from './cleanup.js';
import { freePort, startDaemon, waitAccepting } from './process.js';
import { diffExcerpt, psqlDirOf, runRegress } from './regress-run.js';
import type { RegressOutcome } from './regress-run.js';
import { regressSource, serverVersion } from './regress-source.js';
import { pickBinaries, startServer } from './server.js';
import type { ServerInfo } from './server.js';
import { userlist, workDir, writePrivate } from './targets.js';

const MODES = ['direct', 'session', 'transaction'] as const;
type Mode = (typeof MODES)[number];

const USAGE = `Usage: npm run test:regress -- [options]
       node --import tsx bench/regress.ts [options]

  --modes LIST      direct,session,transaction (default all three, in that order)
  --out DIR         where each mode's pg_regress output and failing tests' diffs go
                    (default regress-report/ in the checkout; DIR/<mode>/<test>.diff)
  --json FILE       the result as JSON (default bench/results/regress-<yyyymmdd>.json)
  --pool-size N     the proxy's default_pool_size (default 40; the schedule runs up to 20
                    tests at once, and psql's \\c holds two connections for a moment)
  --timeout S       per mode, kill pg_regress after S seconds (default 1800)
  -h, --help        this text

The sources (PostgreSQL's src/test/regress of the server's exact version) are downloaded once
into .cache/pg-regress-<version>/ (or $PGSCALE_REGRESS_CACHE), where regress.so is built.
`;

interface Options {
  modes: Mode[];
  out: string;
  json: string;
  poolSize: number;
  timeoutS: number;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      modes: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      'pool-size': { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const modes = (values.modes ?? MODES.join(','))
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean);
  for (const m of modes) {
    if (!(MODES as readonly string[]).includes(m))
      throw new Error(`--modes: unknown "${m}" (accepted: ${MODES.join(', ')})`);
  }
  const int = (v: string | undefined, def: number, what: string) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${what}: expected a positive integer, got "${v}"`);
    return n;
  };
  const day = new Date().toISOString().slice(0, 10).replace(/-/g, '');
  return {
    modes: modes as Mode[],
    out: values.out ?? join(repoRoot, 'regress-report'),
    json: values.json ?? join(repoRoot, 'bench', 'results', `regress-${day}.json`),
    poolSize: int(values['pool-size'], 40, 'pool-size'),
    timeoutS: int(values.timeout, 1800, 'timeout'),
  };
}

const log = (s: string) => process.stderr.write(`${s}\n`);

/**
 * A standalone `pgscale proxy` (this checkout's bin/ and dist/) in front of `server`, letting the
 * superuser in with its password from an auth_file, every database routed to the server.
 */
async function startProxy(server: ServerInfo, mode: 'session' | 'transaction', poolSize: number) {
  const work = workDir('pgscale-regress-proxy-', null);
  const [port, httpPort] = [await freePort(), await freePort()];
  const auth = join(work.dir, 'userlist.txt');
  writePrivate(auth, userlist({ [server.superuser]: server.superPassword }), null);
  const file = join(work.dir, 'pgscale.yaml');
  const proxy: Record<string, unknown> = {
    listen: '127.0.0.1',
    port,
    pool_mode: mode,
    default_pool_size: poolSize,
    max_client_conn: 500,
    auth_type: 'scram-sha-256',
    auth_file: auth,
    // pg_regress drops and creates the database `regression`, connected to `postgres`.
    databases: { '*': { host: server.host, port: server.port } },
  };
  // pg_regress must run as a superuser; a proxy that refuses superusers by default says so here.
  if ('allow_superuser' in proxySchema.shape) proxy.allow_superuser = true;
  const text = stringify({
    cluster: { name: 'regress', data_dir: join(work.dir, 'data') },
    http: { listen: '127.0.0.1', port: httpPort },
    proxy,
    groups: [],
  });
  parseConfig(text, file);
  writePrivate(file, text, null);
  const daemon = startDaemon({
    name: 'pgscale proxy',
    file: process.execPath,
    args: [join(repoRoot, 'bin', 'pgscale.js'), 'proxy', '-c', file],
    cwd: work.dir,
    env: cleanEnv(),
    logFile: join(work.dir, 'proxy.log'),
  });
  const stop = async () => {
    await daemon.stop();
    work.remove();
  };
  try {
    await waitAccepting(
      {
        host: '127.0.0.1',
        port,
        user: server.superuser,
        password: server.superPassword,
        database: 'postgres',
      },
      daemon,
      60_000,
    );
  } catch (e) {
    await stop();
    throw new Error(
      `pgscale proxy (${mode}) on 127.0.0.1:${port} ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  return { port, stop, logTail: (n?: number) => daemon.logTail(n) };
}

interface ModeResult extends Omit<RegressOutcome, 'diffs' | 'tests'> {
  mode: Mode;
  total: number;
  /** Tests pg_regress ran but whose failure it ignores (none in the parallel schedule today). */
  ignored: string[];
  /** Failing tests that pass directly (filled in when the direct mode ran too). */
  differsFromDirect?: string[];
  /** Failing tests with the first changed lines of their diff. */
  excerpts: Record<string, string[]>;
}

async function runMode(o: Options, mode: Mode, psqlDir: string, src: ReturnType<typeof regressSource>) {
  log(`\n=== ${mode}: starting a fresh PostgreSQL server…`);
  const server = await startServer({ maxConnections: 100, sharedBuffers: '128MB' });
  let proxy: Awaited<ReturnType<typeof startProxy>> | null = null;
  try {
    let port = server.info.port;
    if (mode !== 'direct') {
      proxy = await startProxy(server.info, mode, o.poolSize);
      port = proxy.port;
    }
    log(`=== ${mode}: pg_regress against 127.0.0.1:${port}`);
    const r = await runRegress(
      src,
      psqlDir,
      { host: '127.0.0.1', port, user: server.info.superuser, password: server.info.superPassword },
      join(o.out, mode),
      o.timeoutS * 1000,
    );
    if (r.error && proxy) log(`proxy log (last lines):\n${proxy.logTail(20)}`);
    const { diffs, tests, ...rest } = r;
    const excerpts: Record<string, string[]> = {};
    for (const t of r.failed) excerpts[t] = diffExcerpt(diffs[t] ?? '');
    const ignored = tests.filter((t) => t.status === 'ignored').map((t) => t.name);
    const res: ModeResult = { mode, total: tests.length, ignored, ...rest, excerpts };
    return res;
  } finally {
    await proxy?.stop();
    await server.stop();
  }
}

function summary(results: ModeResult[]): string {
  const lines: string[] = ['', 'pg_regress, parallel schedule:'];
  const direct = results.find((r) => r.mode === 'direct');
  for (const r of results) {
    lines.push(
      `  ${r.mode.padEnd(12)} ${r.passed}/${r.total} passed, ${r.failed.length} failed, ${r.seconds} s` +
        (r.error ? `  (ERROR: ${r.error})` : ''),
    );
    if (r.failed.length > 0) lines.push(`    failed: ${r.failed.join(' ')}`);
    if (direct && r !== direct) {
      const extra = r.failed.filter((t) => !direct.failed.includes(t));
      const fixed = direct.failed.filter((t) => !r.failed.includes(t));
      lines.push(`    differs from direct: ${extra.length ? extra.join(' ') : '(none)'}`);
      if (fixed.length) lines.push(`    fail directly but pass here: ${fixed.join(' ')}`);
    }
  }
  return lines.join('\n');
}

/** The checkout's commit (and whether it has local changes): which proxy was measured. */
function gitHead(): string {
  const git = (args: string[]) =>
    spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).stdout?.trim() ?? '';
  const head = git(['rev-parse', '--short', 'HEAD']) || 'unknown';
  return git(['status', '--porcelain', '--untracked-files=no']) ? `${head} (with local changes)` : head;
}

async function main(o: Options): Promise<number> {
  const bins = pickBinaries();
  const version = serverVersion(bins.postgres);
  if (!bins.psql) throw new Error(`no psql next to ${bins.postgres} or on PATH`);
  log(`regress: server ${version.line}`);
  const src = regressSource(version);
  log(`regress: suite of PostgreSQL ${src.version} from ${src.origin}`);
  rmSync(o.out, { recursive: true, force: true });
  mkdirSync(o.out, { recursive: true });
  const results: ModeResult[] = [];
  for (const mode of o.modes) results.push(await runMode(o, mode, psqlDirOf(bins.psql), src));
  const direct = results.find((r) => r.mode === 'direct');
  for (const r of results) {
    if (direct && r !== direct) r.differsFromDirect = r.failed.filter((t) => !direct.failed.includes(t));
  }
  const text = summary(results);
  process.stdout.write(`${text}\n\nDiffs: ${o.out}/<mode>/<test>.diff\n`);
  const json = {
    date: new Date().toISOString(),
    machine: { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
    server: version.line,
    pgscale: { commit: gitHead() },
    suite: { version: src.version, origin: src.origin, sha256: src.sha256, schedule: 'parallel_schedule' },
    proxy: { pool_size: o.poolSize },
    modes: results,
  };
  mkdirSync(join(o.json, '..'), { recursive: true });
  writeFileSync(o.json, `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(`JSON: ${o.json}\n`);
  return results.some((r) => r.error) ? 1 : 0;
}

await runMain(parseOptions, USAGE, main);
