/**
 * Integration-test harness: real PostgreSQL clusters in temporary directories on free ports,
 * started through pgscale's own cluster code or CLI, always torn down afterwards. Tests run once
 * per available PostgreSQL build (Debian's system PostgreSQL and the embedded PostgreSQL 18 from
 * npm), or the directories listed in PGSCALE_TEST_PG_BINS (colon-separated).
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withClient } from '../src/cluster/sql.js';
import { parseConfig } from '../src/config/load.js';
import { newClusterId, renderConfig, INIT_DEFAULTS } from '../src/config/template.js';
import type { InitOptions } from '../src/config/template.js';
import { Cluster } from '../src/cluster/cluster.js';
import { candidateDirs, inspect } from '../src/cluster/binaries.js';
import type { PgBinaries } from '../src/cluster/binaries.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { stopController } from '../src/controller/controller-file.js';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** The PostgreSQL builds to run the suite against: the newest system one and the embedded one. */
export function binarySets(): PgBinaries[] {
  const env = process.env.PGSCALE_TEST_PG_BINS;
  const dirs = env
    ? env
        .split(':')
        .filter(Boolean)
        .map((dir) => ({ dir, source: 'PGSCALE_PG_BIN' as const }))
    : candidateDirs(null).filter((c) => c.source !== 'PGSCALE_PG_BIN');
  const found = dirs.map(inspect).filter((b): b is PgBinaries => typeof b !== 'string');
  if (env) return found;
  const system = found.find((b) => b.source !== 'embedded');
  const embedded = found.find((b) => b.source === 'embedded');
  return [system, embedded].filter((b): b is PgBinaries => b !== undefined);
}

/** A temporary directory the service user (when we are root) can enter. */
export function tempDir(prefix = 'pgscale-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(d, 0o755);
  return d;
}

export interface TestCluster {
  dir: string;
  file: string;
  cluster: Cluster;
  bins: PgBinaries;
  /** Environment for CLI runs: forces these binaries. */
  env: NodeJS.ProcessEnv;
  cleanup(): Promise<void>;
}

export async function makeCluster(
  bins: PgBinaries,
  opts: Partial<InitOptions> & { extra?: (yaml: string) => string } = {},
): Promise<TestCluster> {
  const dir = tempDir();
  const groups = opts.groups ?? 1;
  const replicas = opts.replicas ?? 2;
  // Layout of the block: proxy, HTTP API, then the agents' default api ports (http.port + 1 + the
  // node's position, with room for two added replicas), then the node ports (room for two more).
  const nodes = groups * (replicas + 1);
  const count = 2 * nodes + 6;
  const base = await findFreePortBlock(count);
  let text = renderConfig({
    ...INIT_DEFAULTS,
    // A unique id, as `pgscale init` writes.
    id: newClusterId(opts.name ?? INIT_DEFAULTS.name),
    ...opts,
    groups,
    replicas,
    portBase: base + 4 + nodes,
    proxyPort: base,
    httpPort: base + 1,
  });
  if (opts.extra) text = opts.extra(text);
  const file = join(dir, 'pgscale.yaml');
  writeFileSync(file, text);
  const cluster = new Cluster(parseConfig(text, file), undefined, bins);
  return {
    dir,
    file,
    cluster,
    bins,
    env: { PGSCALE_PG_BIN: bins.dir },
    cleanup: async () => {
      // A controller left by `up --detach` stops first, so it does not outlive its cluster.
      await stopController(cluster.dataDir, 60_000).catch(() => undefined);
      await cluster.destroy().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** makeCluster's `extra` for tests of what runs without high availability. */
export function withoutHa(yaml: string): string {
  return yaml.replace(/^ha:\n {2}(#[^\n]*\n {2})*enabled: true/m, (m) =>
    m.replace('enabled: true', 'enabled: false'),
  );
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the pgscale CLI from source, as a user would run it. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}, cwd = repoRoot): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'pgscale.js'), ...args], {
      cwd,
      env: { ...process.env, PGSCALE_DEV: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export async function until<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
  );
}

/** The first column of the first row of `sql` on node n, as text (the superuser, database `db`). */
export function scalarOn(
  tc: TestCluster,
  n: { host: string; port: number },
  sql: string,
  db = 'postgres',
): Promise<string> {
  return withClient(tc.cluster.target(n, db), async (c) =>
    String(Object.values((await c.query<Record<string, unknown>>(sql)).rows[0]!)[0]),
  );
}

/** Processes whose command line mentions `text` (a cluster's directory, say): what a test left. */
export function processesMentioning(text: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(text)) out.push(`${e}: ${cmd}`);
    } catch {
      // exited
    }
  }
  return out;
}
