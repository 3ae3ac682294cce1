/**
 * pgBackRest as the cluster's WAL archive and backup engine (backup.enabled): where its binary
 * is, which PostgreSQL versions it can handle, the pgbackrest.conf pgscale writes under the data
 * directory (one stanza per group, `<cluster>-g<N>`, every node of the group as pg1..pgN so that a
 * backup can be taken from a standby), and the archive_command / restore_command that go through
 * it. Only what a node's configuration needs lives here; taking, listing, verifying and restoring
 * backups is src/backup/. pgBackRest connects to the nodes over TCP (pgscale's nodes have no Unix
 * socket): it leaves the host out of its connection string, so PGHOST (pgbackrestEnv) names it.
 * https://pgbackrest.org/configuration.html
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { allNodes } from '../config/load.js';
import type { BackupConfig } from '../config/schema.js';
import { ClusterError, ErrorCodes } from '../errors.js';
import { shellQuote } from './conf.js';
import { instancePaths } from './instance.js';
import { passfilePath, writePrivate } from './secrets.js';
import type { RunResult } from './run-as.js';
import { ensureOwnedDir, run } from './run-as.js';

export interface Pgbackrest {
  readonly bin: string;
  readonly version: string;
}

/** Newest PostgreSQL major each pgBackRest release reads (its release notes: 2.46 added 16 …). */
const SUPPORT: [minVersion: number, maxMajor: number][] = [
  [2.55, 18],
  [2.53, 17],
  [2.46, 16],
  [2.41, 15],
  [2.33, 14],
  [2.3, 13],
];

function versionNumber(v: string): number {
  const [a = '0', b = '0'] = v.split('.');
  return Number(a) + Number(b) / 100;
}

/** Whether this pgBackRest reads PostgreSQL `major`. */
export function supportsMajor(p: Pgbackrest, major: number): boolean {
  const v = versionNumber(p.version);
  const max = SUPPORT.find(([min]) => v >= min)?.[1] ?? 0;
  return major <= max;
}

let found: Pgbackrest | null | undefined;

/** pgbackrest from PGSCALE_PGBACKREST, PATH or /usr/bin (Debian's package); null when missing. */
export function findPgbackrest(): Pgbackrest | null {
  if (found !== undefined) return found;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin'];
  const candidates = [
    ...(process.env.PGSCALE_PGBACKREST ? [process.env.PGSCALE_PGBACKREST] : []),
    ...dirs.filter(Boolean).map((d) => join(d, 'pgbackrest')),
  ];
  for (const bin of candidates) {
    try {
      accessSync(bin, constants.X_OK);
      const out = execFileSync(bin, ['version'], { encoding: 'utf8', timeout: 10_000 });
      const m = /pgBackRest\s+(\d+\.\d+)/.exec(out);
      if (m) return (found = { bin: resolve(bin), version: m[1]! });
    } catch {
      // not there or not working: the next one
    }
  }
  return (found = null);
}

/** Where pgBackRest keeps its configuration, locks, logs and spool: <data_dir>/pgbackrest. */
export function pgbackrestPaths(dataDir: string): {
  dir: string;
  conf: string;
  lock: string;
  log: string;
  spool: string;
} {
  const dir = join(dataDir, 'pgbackrest');
  return {
    dir,
    conf: join(dir, 'pgbackrest.conf'),
    lock: join(dir, 'lock'),
    log: join(dir, 'log'),
    spool: join(dir, 'spool'),
  };
}

export function stanzaName(clusterName: string, group: number): string {
  return `${clusterName}-g${group}`;
}

/** The repository directory (posix) or path in the bucket (s3). */
export function repoPath(loaded: LoadedConfig): string {
  const b = loaded.config.backup;
  if (b.repo_path === null) return b.repo_type === 's3' ? '/pgscale' : join(loaded.dataDir, 'backup');
  return b.repo_type === 's3' || isAbsolute(b.repo_path)
    ? b.repo_path
    : resolve(dirname(loaded.file), b.repo_path);
}

/**
 * pgbackrest.conf: the repository and pgscale's paths in [global], then a stanza per group with
 * each of its nodes. The S3 keys are read from their files into it (mode 0600, the service
 * user's): archive_command runs from PostgreSQL, which has no other way to get them.
 */
export function renderPgbackrestConf(loaded: LoadedConfig): string {
  const { config } = loaded;
  const b = config.backup;
  const p = pgbackrestPaths(loaded.dataDir);
  const global: [string, string | number][] = [
    ['repo1-type', b.repo_type],
    ['repo1-path', repoPath(loaded)],
    ['repo1-retention-full', b.retention_full],
    ['lock-path', p.lock],
    ['log-path', p.log],
    ['spool-path', p.spool],
    ['process-max', b.process_max],
    ['compress-type', 'lz4'],
    // A backup asked for now starts now: an immediate checkpoint, not a spread one.
    ['start-fast', 'y'],
    ['log-level-file', 'info'],
    ...s3Options(loaded, b),
  ];
  const lines = ['# Managed by pgscale from pgscale.yaml (backup:). Do not edit.', '[global]'];
  lines.push(...global.map(([k, v]) => `${k}=${v}`));
  for (let g = 0; g < config.groups.length; g++) {
    lines.push('', `[${stanzaName(config.cluster.name, g)}]`);
    allNodes(config)
      .filter((n) => n.group === g)
      .forEach((n, i) => {
        lines.push(
          `pg${i + 1}-path=${instancePaths(loaded.dataDir, n.name).pgdata}`,
          `pg${i + 1}-port=${n.port}`,
          `pg${i + 1}-user=${config.postgres.superuser}`,
        );
      });
  }
  return lines.join('\n') + '\n';
}

function s3Options(loaded: LoadedConfig, b: BackupConfig): [string, string][] {
  if (b.repo_type !== 's3') return [];
  const s = b.s3;
  const missing = (['bucket', 'endpoint', 'region', 'key_file', 'secret_key_file'] as const).filter(
    (k) => s[k] === null,
  );
  if (missing.length) {
    throw new ClusterError(
      ErrorCodes.CONFIG_INVALID,
      `backup.repo_type is s3 but backup.s3 lacks ${missing.map((k) => `backup.s3.${k}`).join(', ')}`,
    );
  }
  const secret = (f: string) => readFileSync(resolve(dirname(loaded.file), f), 'utf8').trim();
  return [
    ['repo1-s3-bucket', s.bucket!],
    ['repo1-s3-endpoint', s.endpoint!],
    ['repo1-s3-region', s.region!],
    ['repo1-s3-uri-style', s.uri_style],
    ['repo1-s3-verify-tls', s.verify_tls ? 'y' : 'n'],
    ['repo1-s3-key', secret(s.key_file!)],
    ['repo1-s3-key-secret', secret(s.secret_key_file!)],
  ];
}

/** The archive_command and restore_command of a node, through pgBackRest. */
export function pgbackrestCommands(
  p: Pgbackrest,
  dataDir: string,
  stanza: string,
  pgdata: string,
): { archiveCommand: string; restoreCommand: string } {
  const base = `${shellQuote(p.bin)} --config=${shellQuote(pgbackrestPaths(dataDir).conf)} --stanza=${shellQuote(stanza)} --pg1-path=${shellQuote(pgdata)}`;
  return { archiveCommand: `${base} archive-push "%p"`, restoreCommand: `${base} archive-get %f "%p"` };
}

/** The environment pgBackRest connects to the nodes with: TCP to `host`, passwords from the passfile. */
export function pgbackrestEnv(dataDir: string, host: string): NodeJS.ProcessEnv {
  return { PGHOST: host === 'localhost' ? '127.0.0.1' : host, PGPASSFILE: passfilePath(dataDir) };
}

/** Whether pgBackRest archives this cluster's WAL: backup.enabled and a pgbackrest that reads `major`. */
export function pgbackrestFor(loaded: LoadedConfig, major: number): Pgbackrest | null {
  if (!loaded.config.backup.enabled) return null;
  const p = findPgbackrest();
  return p && supportsMajor(p, major) ? p : null;
}

/**
 * Writes pgbackrest.conf and makes its directories (and a posix repository), owned by the
 * service user that runs PostgreSQL's archive_command.
 */
export function writePgbackrestConf(loaded: LoadedConfig): void {
  const p = pgbackrestPaths(loaded.dataDir);
  for (const d of [p.dir, p.lock, p.log, p.spool]) ensureOwnedDir(d, 0o700);
  if (loaded.config.backup.repo_type === 'posix') ensureOwnedDir(repoPath(loaded), 0o750);
  writePrivate(p.conf, renderPgbackrestConf(loaded), true);
}

/** Runs a pgbackrest command for a stanza as the service user; throws with its output on failure. */
export function pgbackrest(
  p: Pgbackrest,
  loaded: LoadedConfig,
  group: number,
  args: readonly string[],
  opts: { allowFail?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  const host = allNodes(loaded.config).find((n) => n.group === group)?.host ?? '127.0.0.1';
  return run(
    p.bin,
    [
      `--config=${pgbackrestPaths(loaded.dataDir).conf}`,
      `--stanza=${stanzaName(loaded.config.cluster.name, group)}`,
      '--log-level-console=warn',
      '--log-level-stderr=off',
      ...args,
    ],
    {
      env: pgbackrestEnv(loaded.dataDir, host),
      timeoutMs: opts.timeoutMs ?? 6 * 3600_000,
      allowFail: opts.allowFail,
    },
  );
}

/**
 * Creates the group's stanza (idempotent: an existing one is left as it is) once its primary
 * runs, so that archive_command finds it; until then PostgreSQL retries the archiving.
 */
export async function ensureStanza(p: Pgbackrest, loaded: LoadedConfig, group: number): Promise<void> {
  writePgbackrestConf(loaded);
  await pgbackrest(p, loaded, group, ['stanza-create'], { timeoutMs: 120_000 });
}
