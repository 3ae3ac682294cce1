/**
 * Runs PostgreSQL's pgbench against one endpoint and reads what it measured: the TPS line of its
 * summary, and per-transaction latencies from its `--log` files (one per thread) for p50/p99.
 * The password reaches pgbench only through a temporary libpq passfile (PGPASSFILE), never the
 * command line. Log line format (https://www.postgresql.org/docs/15/pgbench.html, "Per-Transaction
 * Logging"): `client_id transaction_no time script_no time_epoch time_us [schedule_lag] [retries]`,
 * where `time` is the latency in µs, or `skipped`/`failed` for transactions that did not complete.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { tempDir } from '../test/harness.js';
import { cleanEnv } from '../src/cluster/run-as.js';
import { onCleanup } from './cleanup.js';
import type { Login } from './process.js';

/**
 * pgbench's built-in select-only and TPC-B-like scripts, `user-function`: one call of a
 * PL/pgSQL function per transaction (created by createUserFunction), which makes pgscale check
 * the server's session state before giving the connection back (docs/proxy.md), and `mixed`:
 * single-statement transactions, each a point read of pgbench_accounts or (writePercent % of
 * them) an update of one row, drawn at random (pgbench -f script@weight), and `script`: the
 * caller's own script (PgbenchRun.script).
 */
export type Workload = 'select-only' | 'tpcb' | 'user-function' | 'mixed' | 'script';

const MIXED_READ_SCRIPT = '\\set aid random(1, 100000 * :scale)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n';
const MIXED_WRITE_SCRIPT =
  '\\set aid random(1, 100000 * :scale)\n\\set delta random(-5000, 5000)\n' +
  'UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n';

const USER_FUNCTION_SCRIPT = '\\set aid random(1, 100000)\nSELECT pgscale_bench_balance(:aid);\n';

/** Creates the function the user-function workload calls (straight on the server). */
export async function createUserFunction(login: Login): Promise<void> {
  const c = new pg.Client({ ...login });
  c.on('error', () => undefined);
  await c.connect();
  try {
    await c.query(`CREATE OR REPLACE FUNCTION pgscale_bench_balance(a int) RETURNS int
      LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN (SELECT abalance FROM pgbench_accounts WHERE aid = a); END $$`);
  } finally {
    await c.end();
  }
}
export type QueryMode = 'simple' | 'extended' | 'prepared';

export interface PgbenchRun extends Login {
  pgbench: string;
  workload: Workload;
  mode: QueryMode;
  clients: number;
  durationS: number;
  /** `mixed`: the share of writes, in percent (0-100). */
  writePercent?: number;
  /** `script`: the script's text, and a name for its file (one file per name and process). */
  script?: { name: string; text: string };
  /** Transactions per second all clients together are held to (`-R`), or none: as fast as they can. */
  rate?: number;
}

export interface PgbenchResult {
  /** TPS without initial connection time, as pgbench reports it; null when it printed none. */
  tps: number | null;
  /** Completed transactions found in the logs. */
  transactions: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Transactions pgbench counted as failed (serialization/deadlock) or logged as failed/skipped. */
  failed: number;
  /** Clients pgbench aborted after an error (any other SQL or connection error). */
  aborted: number;
  /** p99 (ms) of each script's transactions, by script number (mixed: 0 reads, 1 writes). */
  scriptP99Ms: (number | null)[];
  /** Lines of pgbench's stderr reporting an error, and the first of them. */
  errorLines: number;
  firstError: string | null;
  exitCode: number;
}

/** libpq passfile line: `:` and `\` escaped with a backslash. */
function passfileLine(l: Login): string {
  const e = (s: string | number) => String(s).replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return `${e(l.host)}:${e(l.port)}:${e(l.database)}:${e(l.user)}:${e(l.password)}\n`;
}

interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs pgbench with a passfile in a fresh temporary directory, removed afterwards. */
async function execPgbench(
  file: string,
  login: Login,
  args: string[],
  timeoutMs: number,
  inDir?: (dir: string) => void,
): Promise<Exec> {
  const dir = tempDir('pgscale-bench-pgbench-');
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const forget = onCleanup(`directory ${dir}`, () => Promise.resolve(remove()), remove);
  try {
    const passfile = join(dir, 'pgpass');
    writeFileSync(passfile, passfileLine(login), { mode: 0o600 });
    const r = await new Promise<Exec>((resolve, reject) => {
      const child = spawn(
        file,
        ['-h', login.host, '-p', String(login.port), '-U', login.user, ...args, login.database],
        {
          cwd: dir,
          env: { ...cleanEnv(), PGPASSFILE: passfile, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '30' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const kill = () => {
        child.kill('SIGKILL');
      };
      const forgetChild = onCleanup(`pgbench (pid ${child.pid})`, () => Promise.resolve(kill()), kill);
      // A safety net for a hung run, not a measurement: pgbench stops itself after -T.
      const timer = setTimeout(kill, timeoutMs);
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2_000_000)));
      child.on('error', (e) => {
        clearTimeout(timer);
        forgetChild();
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        forgetChild();
        if (signal) stderr += `\npgbench: error: killed by ${signal}\n`;
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });
    inDir?.(dir);
    return r;
  } finally {
    remove();
    forget();
  }
}

/** `pgbench -i -s scale` (with its own vacuum), straight to the server. */
export async function initPgbench(pgbench: string, login: Login, scale: number): Promise<void> {
  const r = await execPgbench(pgbench, login, ['-i', '-s', String(scale), '-q'], 30 * 60_000);
  if (r.code !== 0)
    throw new Error(
      `pgbench -i failed (exit ${r.code}):\n${r.stderr.trim().split('\n').slice(-5).join('\n')}`,
    );
}

/** Seconds added to -T for the clients to connect: 1 s per 50 clients. */
export function connectAllowanceS(clients: number): number {
  return Math.ceil(clients / 50);
}

export function pgbenchArgs(
  r: Pick<PgbenchRun, 'workload' | 'mode' | 'clients' | 'durationS' | 'writePercent' | 'script' | 'rate'>,
): string[] {
  const w = Math.min(100, Math.max(0, r.writePercent ?? 0));
  if (r.workload === 'script' && !r.script) throw new Error('pgbench: the script workload needs a script');
  return [
    ...(r.workload === 'script' && r.script ? ['-f', scriptFile(r.script.name, r.script.text)] : []),
    ...(r.workload === 'select-only' ? ['-S'] : []),
    ...(r.workload === 'user-function' ? ['-f', userFunctionScript()] : []),
    ...(r.workload === 'mixed'
      ? [
          '-f',
          `${scriptFile('mixed-read', MIXED_READ_SCRIPT)}@${100 - w}`,
          '-f',
          `${scriptFile('mixed-write', MIXED_WRITE_SCRIPT)}@${w}`,
        ]
      : []),
    // -n: no vacuum before the run (the caller vacuums straight on the server, not through a proxy).
    '-n',
    '-M',
    r.mode,
    '-c',
    String(r.clients),
    '-j',
    String(Math.min(r.clients, 4)),
    ...(r.rate !== undefined ? ['-R', String(r.rate)] : []),
    // pgbench's clock starts before its clients connect, and 1,000 SCRAM logins on a small
    // machine take seconds: allow for them, so that about durationS remain for transactions
    // (the TPS pgbench reports excludes the initial connection time).
    '-T',
    String(r.durationS + connectAllowanceS(r.clients)),
    '--log',
    '--log-prefix=txlog',
  ];
}

export async function runPgbench(r: PgbenchRun): Promise<PgbenchResult> {
  let latenciesUs: Float64Array = new Float64Array(0);
  let byScript: Float64Array[] = [];
  let loggedFailed = 0;
  const ex = await execPgbench(
    r.pgbench,
    r,
    pgbenchArgs(r),
    (r.durationS + 120 + r.clients / 5) * 1000,
    (dir) => {
      const logs = readdirSync(dir)
        .filter((n) => n.startsWith('txlog.'))
        .map((n) => readFileSync(join(dir, n), 'utf8'));
      ({ latenciesUs, byScript, failed: loggedFailed } = parseLogs(logs));
    },
  );
  const summary = parseSummary(ex.stdout);
  const errors = ex.stderr.split('\n').filter((l) => /\b(error|fatal)\b/i.test(l));
  if (errors.length === 0 && (summary.tps === null || latenciesUs.length === 0 || ex.code !== 0)) {
    const last = (ex.stderr.trim() || ex.stdout.trim()).split('\n').pop() ?? '';
    errors.push(`pgbench: no transactions completed (exit ${ex.code}): ${last}`);
  }
  latenciesUs.sort();
  return {
    tps: summary.tps,
    transactions: latenciesUs.length,
    p50Ms: percentile(latenciesUs, 0.5),
    p99Ms: percentile(latenciesUs, 0.99),
    scriptP99Ms: byScript.map((xs) => percentile(xs.sort(), 0.99)),
    failed: Math.max(summary.failed, loggedFailed),
    aborted: errors.filter((l) => /aborted in command|aborted while establishing connection/.test(l)).length,
    errorLines: errors.length,
    firstError: errors[0]?.trim() ?? null,
    exitCode: ex.code,
  };
}

/** Latencies (µs) of completed transactions (all, and by script), and the count of failed or skipped ones. */
export function parseLogs(texts: readonly string[]): {
  latenciesUs: Float64Array;
  byScript: Float64Array[];
  failed: number;
} {
  const out: number[] = [];
  const scripts: number[][] = [];
  let failed = 0;
  for (const text of texts) {
    for (const line of text.split('\n')) {
      if (!line) continue;
      const f = line.split(' ');
      const t = f[2];
      if (t === undefined) continue;
      const v = Number(t);
      if (Number.isFinite(v) && /^\d+$/.test(t)) {
        out.push(v);
        const n = Number(f[3]);
        if (Number.isInteger(n) && n >= 0 && n < 16) (scripts[n] ??= []).push(v);
      } else failed++;
    }
  }
  return {
    latenciesUs: Float64Array.from(out),
    byScript: Array.from(scripts, (xs) => Float64Array.from(xs ?? [])),
    failed,
  };
}

/** Nearest-rank percentile of sorted microseconds, in milliseconds. */
export function percentile(sortedUs: Float64Array, p: number): number | null {
  if (sortedUs.length === 0) return null;
  const i = Math.min(sortedUs.length - 1, Math.max(0, Math.ceil(p * sortedUs.length) - 1));
  return sortedUs[i]! / 1000;
}

/** TPS and failed transactions from pgbench's summary (PostgreSQL 13–18 wordings). */
export function parseSummary(stdout: string): { tps: number | null; failed: number } {
  const tpsLines = [...stdout.matchAll(/^tps = ([\d.]+) \(([^)]*)\)/gm)];
  const pick =
    tpsLines.find((m) => /without initial connection|excluding connections/.test(m[2]!)) ?? tpsLines[0];
  const failed = /^number of failed transactions: (\d+)/m.exec(stdout);
  return { tps: pick ? Number(pick[1]) : null, failed: failed ? Number(failed[1]) : 0 };
}

const scriptPaths = new Map<string, string>();

/** A script as a file (pgbench reads scripts from files): one per name and process. */
function scriptFile(name: string, text: string): string {
  const known = scriptPaths.get(name);
  if (known !== undefined) return known;
  const path = join(tmpdir(), `pgscale-bench-${name}-${process.pid}.sql`);
  writeFileSync(path, text);
  process.once('exit', () => rmSync(path, { force: true }));
  scriptPaths.set(name, path);
  return path;
}

function userFunctionScript(): string {
  return scriptFile('user-function', USER_FUNCTION_SCRIPT);
}
