/**
 * Taking, listing and verifying a cluster's backups with pgBackRest, one stanza per group
 * (src/cluster/pgbackrest.ts writes its configuration). A backup is taken from a streaming standby
 * when the group has one and backup.from_standby is on (pgBackRest's backup-standby: the primary
 * only starts and stops the backup, the files are read on the standby). Listing reads
 * `pgbackrest info --output=json`; verifying runs `pgbackrest verify`, which checks every file of
 * the repository against its checksum (it exits 0 whatever it finds, so its report is read).
 */
import type { Cluster } from '../cluster/cluster.js';
import type { Pgbackrest } from '../cluster/pgbackrest.js';
import {
  findPgbackrest,
  pgbackrest,
  stanzaName,
  supportsMajor,
  writePgbackrestConf,
} from '../cluster/pgbackrest.js';
import { ClusterError, ErrorCodes } from '../errors.js';
import type { BackupType } from './schedule.js';

export interface BackupInfo {
  group: number;
  label: string;
  type: BackupType;
  /** ISO times. */
  start: string;
  stop: string;
  /** Database size, and what this backup added to the repository (compressed). */
  size: number;
  repoSize: number;
  lsnStart: string | null;
  lsnStop: string | null;
  walStart: string | null;
  walStop: string | null;
  /** pgBackRest found page checksum errors in it. */
  error: boolean;
}

export interface GroupBackups {
  group: number;
  stanza: string;
  /** pgBackRest's status of the stanza: "ok", "no valid backups", "missing stanza path" … */
  status: string;
  /** WAL held in the repository: the oldest and newest segment. */
  walMin: string | null;
  walMax: string | null;
  backups: BackupInfo[];
}

/** pgBackRest for this cluster, or an error saying why backups cannot be taken here. */
export function requirePgbackrest(cluster: Cluster): Pgbackrest {
  const p = cluster.pgbackrest();
  if (p) return p;
  if (!cluster.config.backup.enabled) {
    throw new ClusterError(
      ErrorCodes.USAGE,
      `backups are off for cluster "${cluster.config.cluster.name}": set backup.enabled: true in ${cluster.loaded.file}, then run \`pgscale up\` (docs/backup.md)`,
    );
  }
  const found = findPgbackrest();
  if (!found) {
    throw new ClusterError(
      ErrorCodes.BINARIES_NOT_FOUND,
      'pgbackrest is not installed (apt-get install pgbackrest); WAL goes to the local safe archive meanwhile',
    );
  }
  if (!supportsMajor(found, cluster.bins.major)) {
    throw new ClusterError(
      ErrorCodes.BINARIES_NOT_FOUND,
      `pgBackRest ${found.version} does not support PostgreSQL ${cluster.bins.major}; install a newer pgbackrest`,
    );
  }
  return found;
}

export function groupOption(cluster: Cluster, group: number | undefined): number[] {
  if (group === undefined) return cluster.config.groups.map((_, i) => i);
  return [group];
}

interface InfoJson {
  name: string;
  status?: { code: number; message: string };
  archive?: { min?: string | null; max?: string | null }[];
  backup?: {
    label: string;
    type: BackupType;
    error?: boolean;
    timestamp: { start: number; stop: number };
    info: { size: number; repository: { delta: number } };
    lsn?: { start?: string; stop?: string };
    archive?: { start?: string | null; stop?: string | null };
  }[];
}

const iso = (s: number) => new Date(s * 1000).toISOString();

/** The backups of each group (all groups, or the one named). */
export async function listBackups(cluster: Cluster, groups: readonly number[]): Promise<GroupBackups[]> {
  const p = requirePgbackrest(cluster);
  writePgbackrestConf(cluster.loaded);
  const out: GroupBackups[] = [];
  for (const group of groups) {
    const r = await pgbackrest(p, cluster.loaded, group, ['info', '--output=json'], { timeoutMs: 60_000 });
    const info = (JSON.parse(r.stdout) as InfoJson[])[0];
    const last = info?.archive?.[info.archive.length - 1];
    out.push({
      group,
      stanza: stanzaName(cluster.config.cluster.name, group),
      status: info?.status?.message ?? 'unknown',
      walMin: info?.archive?.[0]?.min ?? null,
      walMax: last?.max ?? null,
      backups: (info?.backup ?? []).map((b) => ({
        group,
        label: b.label,
        type: b.type,
        start: iso(b.timestamp.start),
        stop: iso(b.timestamp.stop),
        size: b.info.size,
        repoSize: b.info.repository.delta,
        lsnStart: b.lsn?.start ?? null,
        lsnStop: b.lsn?.stop ?? null,
        walStart: b.archive?.start ?? null,
        walStop: b.archive?.stop ?? null,
        error: b.error === true,
      })),
    });
  }
  return out;
}

/** Whether a standby of the group streams now (a backup can then be taken from it). */
async function streamingStandby(cluster: Cluster, group: number): Promise<string | null> {
  const st = await cluster.status();
  const s = st.find((n) => n.group === group && n.role === 'replica' && n.state === 'running' && n.streaming);
  return s?.name ?? null;
}

export interface TakenBackup {
  backup: BackupInfo;
  /** The standby it was read from, or null (the primary). */
  from: string | null;
}

/** Takes a backup of a group now and returns it as pgbackrest info lists it. */
export async function takeBackup(cluster: Cluster, group: number, type: BackupType): Promise<TakenBackup> {
  const p = requirePgbackrest(cluster);
  const primary = cluster.primaryOf(group);
  if (!primary) {
    throw new ClusterError(ErrorCodes.NO_PRIMARY, `group ${group} has no primary; run \`pgscale up\` first`);
  }
  writePgbackrestConf(cluster.loaded);
  const standby = cluster.config.backup.from_standby ? await streamingStandby(cluster, group) : null;
  const before = new Set((await listBackups(cluster, [group]))[0]!.backups.map((b) => b.label));
  const r = await pgbackrest(
    p,
    cluster.loaded,
    group,
    ['backup', `--type=${type}`, ...(standby ? ['--backup-standby'] : [])],
    { allowFail: true },
  );
  if (r.code !== 0) {
    throw new ClusterError(
      ErrorCodes.BINARY_FAILED,
      `the backup of group ${group} failed (pgbackrest exit ${r.code}): ${lastLines(r.stdout + r.stderr)}`,
    );
  }
  const after = (await listBackups(cluster, [group]))[0]!.backups;
  const backup = after.find((b) => !before.has(b.label)) ?? after[after.length - 1];
  if (!backup) throw new ClusterError(ErrorCodes.INTERNAL, `pgbackrest listed no backup of group ${group}`);
  return { backup, from: standby };
}

export interface VerifyResult {
  group: number;
  ok: boolean;
  /** The lines of pgBackRest's report that name a problem (or its whole report when it failed). */
  problems: string[];
}

/** Runs `pgbackrest verify` on each group's stanza: checksums of every backup file and WAL segment. */
export async function verifyBackups(cluster: Cluster, groups: readonly number[]): Promise<VerifyResult[]> {
  const p = requirePgbackrest(cluster);
  writePgbackrestConf(cluster.loaded);
  const out: VerifyResult[] = [];
  for (const group of groups) {
    const r = await pgbackrest(p, cluster.loaded, group, ['verify', '--output=text', '--verbose'], {
      allowFail: true,
    });
    const lines = (r.stdout + r.stderr).split('\n').map((l) => l.trim());
    const problems = lines.filter(
      (l) =>
        /status: invalid/.test(l) ||
        /(missing|checksum invalid|size invalid|other): [1-9]/.test(l) ||
        /^(ERROR|WARN)/.test(l),
    );
    if (r.code !== 0 && problems.length === 0) problems.push(lastLines(r.stdout + r.stderr));
    out.push({ group, ok: r.code === 0 && problems.length === 0, problems });
  }
  return out;
}

export function lastLines(text: string, n = 6): string {
  return text.trim().split('\n').slice(-n).join('\n');
}
