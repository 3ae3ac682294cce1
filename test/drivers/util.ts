/**
 * Helpers shared by the driver scenarios: unique table names, libpq environments, child processes
 * with captured output and a deadline, and node-postgres connections as the app role or admin.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import type { DriverTarget } from './target.js';

/** A table (or channel) name no other scenario or run uses: `drv_<what>_<8 hex>`. */
export function uniqueName(what: string): string {
  return `drv_${what}_${randomBytes(4).toString('hex')}`;
}

/** The environment for a libpq-based child (psql, pgbench, psycopg2): no inherited PG* settings. */
export function libpqEnv(t: DriverTarget, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return {
    ...env,
    PGHOST: t.host,
    PGPORT: String(t.port),
    PGUSER: t.user,
    PGDATABASE: t.database,
    PGPASSWORD: t.password,
    PGAPPNAME: 'pgscale-drivers',
    PGCONNECT_TIMEOUT: '10',
    ...extra,
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion; kills it (and fails) after `timeoutMs`. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`${cmd} ${args.join(' ')} timed out\n${stderr}${stdout}`));
      else resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Asserts exit code 0, showing the child's output otherwise. */
export function expectSuccess(r: RunResult, what: string): RunResult {
  if (r.code !== 0) {
    throw new Error(
      `${what} exited with ${r.code}\n--- stderr\n${r.stderr}\n--- stdout\n${r.stdout.slice(-4000)}`,
    );
  }
  return r;
}

export function appClient(t: DriverTarget, extra: Partial<pg.ClientConfig> = {}): pg.Client {
  const c = new pg.Client({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database: t.database,
    application_name: 'pgscale-drivers',
    connectionTimeoutMillis: 10_000,
    ...extra,
  });
  // An error event outside a query (server gone) must fail the test, not crash the runner.
  c.on('error', () => undefined);
  return c;
}

/** Runs `fn` with a connected app-role client, always closing it. */
export async function withApp<T>(t: DriverTarget, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = appClient(t);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Runs `fn` as the superuser directly on the server (never through a proxy), in the target database. */
export async function withAdmin<T>(t: DriverTarget, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = appClient(t, { ...t.admin });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * Drops tables directly on the server, so clean-up works even when the target is broken. Runs in
 * `finally` blocks: a failure here is reported but not thrown, so it never hides the scenario's
 * own error.
 */
export async function dropTables(t: DriverTarget, ...names: string[]): Promise<void> {
  if (names.length === 0) return;
  try {
    await withAdmin(t, (c) => c.query(`DROP TABLE IF EXISTS ${names.join(', ')}`));
  } catch (e) {
    process.stderr.write(`driver suite: could not drop ${names.join(', ')}: ${String(e)}\n`);
  }
}

/** One scalar of the first row, through the admin connection. */
export async function adminScalar(t: DriverTarget, sql: string, values: unknown[] = []): Promise<string> {
  return withAdmin(t, async (c) => {
    const r = await c.query<Record<string, unknown>>(sql, values);
    const row = r.rows[0];
    return String(row ? Object.values(row)[0] : undefined);
  });
}

export interface ClientTools {
  psql: string | null;
  pgbench: string | null;
  python: string;
  java: string | null;
  javac: string | null;
  pgjdbcJar: string;
}

function which(name: string): string | null {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return null;
}

/**
 * The client programs the scenarios run. psql and pgbench come from PGSCALE_TEST_PG_CLIENT_BIN,
 * else the newest Debian PostgreSQL directory, else PATH. psycopg2 is Debian's, so the system
 * Python (`/usr/bin/python3`) is used, not whatever `python3` PATH finds first.
 */
export function findClientTools(): ClientTools {
  const dirs: string[] = [];
  if (process.env.PGSCALE_TEST_PG_CLIENT_BIN) dirs.push(process.env.PGSCALE_TEST_PG_CLIENT_BIN);
  if (existsSync('/usr/lib/postgresql')) {
    const majors = readdirSync('/usr/lib/postgresql')
      .filter((n) => /^\d+$/.test(n))
      .sort((a, b) => Number(b) - Number(a));
    dirs.push(...majors.map((m) => `/usr/lib/postgresql/${m}/bin`));
  }
  const tool = (name: string) => dirs.map((d) => join(d, name)).find((p) => existsSync(p)) ?? which(name);
  return {
    psql: tool('psql'),
    pgbench: tool('pgbench'),
    python: process.env.PGSCALE_TEST_PYTHON ?? '/usr/bin/python3',
    java: which('java'),
    javac: which('javac'),
    pgjdbcJar: process.env.PGSCALE_TEST_PGJDBC_JAR ?? '/usr/share/java/postgresql.jar',
  };
}

export function required(path: string | null, what: string, hint: string): string {
  if (!path) throw new Error(`${what} not found; ${hint}`);
  return path;
}

/** Who a Java driver program logs in as (its DRV_* variables). */
export interface JavaLogin {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
}

/**
 * Compiles the Java program `source` against pgjdbc in a temporary directory (removed after) and
 * runs its class `mainClass` with the DRV_* login and the `extra` variables; its result, checked
 * to have succeeded.
 */
export async function runJavaDriver(
  tools: ClientTools,
  source: string,
  mainClass: string,
  login: JavaLogin,
  extra: Record<string, string>,
  timeoutMs = 180_000,
): Promise<RunResult> {
  const javac = required(tools.javac, 'javac', 'install a JDK (default-jdk-headless)');
  const java = required(tools.java, 'java', 'install a JDK (default-jdk-headless)');
  const classes = mkdtempSync(join(tmpdir(), `pgscale-${mainClass.toLowerCase()}-java-`));
  try {
    expectSuccess(
      await run(javac, ['-encoding', 'UTF-8', '-cp', tools.pgjdbcJar, '-d', classes, source], {
        timeoutMs: 120_000,
      }),
      'javac',
    );
    const r = await run(java, ['-cp', `${classes}:${tools.pgjdbcJar}`, mainClass], {
      env: {
        ...process.env,
        DRV_HOST: login.host,
        DRV_PORT: String(login.port),
        DRV_DATABASE: login.database,
        DRV_USER: login.user,
        DRV_PASSWORD: login.password,
        ...extra,
      },
      timeoutMs,
    });
    return expectSuccess(r, mainClass);
  } finally {
    rmSync(classes, { recursive: true, force: true });
  }
}
