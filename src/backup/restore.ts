/**
 * Point-in-time recovery of a group with pgBackRest: the newest backup that ended before the
 * target is restored and the archived WAL replayed up to the target (a time, an LSN, or the end of
 * the archive), then the server is promoted (recovery_target_action=promote).
 *
 * - Into a new directory: a plain PostgreSQL data directory, with archiving off (it must never
 *   push WAL into the cluster's repository) and its own port, that the user starts with the
 *   command printed. The cluster is not touched.
 * - In place: the controller and the nodes are stopped, the group's primary is restored over its
 *   data directory (delta restore) and recovers; its standbys are cloned again from it (the clone
 *   code of add-replica), then everything is stopped again: `pgscale up` starts the cluster.
 */
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Cluster } from '../cluster/cluster.js';
import { pgbackrest } from '../cluster/pgbackrest.js';
import { findFreePortBlock } from '../cluster/ports.js';
import { INCLUDE_LINE } from '../cluster/conf.js';
import { MARKER, REJOIN_MARKER, instancePaths, runningPid } from '../cluster/instance.js';
import { chownToService, ensureOwnedDir, serviceCanReach, serviceUser } from '../cluster/run-as.js';
import { withClient } from '../cluster/sql.js';
import type { NodeRef } from '../config/load.js';
import { ClusterError, ErrorCodes, UsageError } from '../errors.js';
import { parseLsn } from '../protocol/lsn.js';
import type { BackupInfo } from './backups.js';
import { lastLines, listBackups, requirePgbackrest } from './backups.js';
import type { RestoreTarget } from './target.js';

/** The backup to restore from: the newest that ended before the target; a clear error when none. */
export async function chooseBackup(
  cluster: Cluster,
  group: number,
  target: RestoreTarget,
): Promise<BackupInfo> {
  const backups = (await listBackups(cluster, [group]))[0]!.backups.filter((b) => !b.error);
  if (backups.length === 0) {
    throw new ClusterError(
      ErrorCodes.USAGE,
      `group ${group} has no backup yet: take one with \`pgscale backup --group ${group}\` (nothing was changed)`,
    );
  }
  const before = backups.filter((b) => {
    if (target.type === 'time') return new Date(b.stop) <= target.at;
    if (target.type === 'lsn') {
      const stop = parseLsn(b.lsnStop);
      const want = parseLsn(target.target);
      return stop !== null && want !== null && stop <= want;
    }
    return true;
  });
  const chosen = before[before.length - 1];
  if (!chosen) {
    const first = backups[0]!;
    throw new ClusterError(
      ErrorCodes.USAGE,
      `no backup of group ${group} ended before ${target.type === 'time' ? target.at.toISOString() : target.type === 'lsn' ? target.target : 'now'}: ` +
        `the oldest (${first.label}) ended at ${target.type === 'lsn' ? first.lsnStop : first.stop} (nothing was changed)`,
    );
  }
  return chosen;
}

/**
 * Best effort, when the group's primary runs: switches to a new WAL segment and waits (at most a
 * minute) until the finished one is archived, so that recovery finds every commit up to now; a
 * target after the last archived commit would otherwise end recovery before the target.
 */
async function flushArchive(cluster: Cluster, group: number): Promise<void> {
  const primary = cluster.primaryOf(group);
  if (!primary || runningPid(instancePaths(cluster.dataDir, primary.name).pgdata) === null) return;
  await withClient(cluster.target(primary), async (c) => {
    const r = await c.query<{ wal: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS wal');
    const wal = r.rows[0]!.wal;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const a = await c.query<{ last: string | null }>(
        'SELECT last_archived_wal AS last FROM pg_stat_archiver',
      );
      if ((a.rows[0]?.last ?? '') >= wal) return;
      await new Promise((res) => setTimeout(res, 200));
    }
  }).catch(() => undefined);
}

function restoreArgs(b: BackupInfo, target: RestoreTarget, pgdata: string): string[] {
  return [
    'restore',
    `--set=${b.label}`,
    `--pg1-path=${pgdata}`,
    `--type=${target.type}`,
    ...(target.type === 'default' ? [] : [`--target=${target.target}`, '--target-action=promote']),
  ];
}

async function runRestore(cluster: Cluster, group: number, args: string[]): Promise<void> {
  const p = requirePgbackrest(cluster);
  const r = await pgbackrest(p, cluster.loaded, group, args, { allowFail: true });
  if (r.code !== 0) {
    throw new ClusterError(
      ErrorCodes.BINARY_FAILED,
      `pgbackrest restore failed (exit ${r.code}): ${lastLines(r.stdout + r.stderr)}`,
    );
  }
}

/** Removes the standby settings a backup taken on a standby carries in postgresql.auto.conf. */
function stripStandbySettings(pgdata: string): void {
  const auto = join(pgdata, 'postgresql.auto.conf');
  if (!existsSync(auto)) return;
  const kept = readFileSync(auto, 'utf8')
    .split('\n')
    .filter((l) => !/^\s*(primary_conninfo|primary_slot_name)\s*=/.test(l));
  writeFileSync(auto, kept.join('\n'), { mode: 0o600 });
  chownToService(auto);
}

export interface RestoredCopy {
  dir: string;
  port: number;
  backup: BackupInfo;
  /** The command that starts it (as the service user when pgscale runs as root). */
  startCommand: string;
}

/** Restores group `group` as of `target` into `dir`, a new plain data directory (see the top). */
export async function restoreInto(
  cluster: Cluster,
  group: number,
  target: RestoreTarget,
  into: string,
): Promise<RestoredCopy> {
  const dir = resolve(into);
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new UsageError(`--into ${dir} is not empty; name a new or empty directory (nothing was changed)`);
  }
  if (!serviceCanReach(dirname(dir))) {
    throw new UsageError(
      `--into: the user PostgreSQL runs as cannot reach ${dirname(dir)}; choose another place`,
    );
  }
  const backup = await chooseBackup(cluster, group, target);
  await flushArchive(cluster, group);
  ensureOwnedDir(dir, 0o700);
  try {
    await runRestore(cluster, group, [...restoreArgs(backup, target, dir), '--archive-mode=off']);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const port = await findFreePortBlock(1, 20000);
  stripStandbySettings(dir);
  for (const f of [MARKER, REJOIN_MARKER, 'standby.signal']) rmSync(join(dir, f), { force: true });
  // pgscale.conf of the node it came from keeps its settings (a standby's recovery needs at least
  // the primary's max_* values); what would tie the copy to that node is overridden after it.
  const conf = join(dir, 'pgscale.conf');
  const kept = existsSync(conf) ? readFileSync(conf, 'utf8') : '';
  writeFileSync(
    conf,
    kept +
      [
        `# Restored by pgscale from ${backup.label} (group ${group}); no longer managed by pgscale.`,
        `port = ${port}`,
        "listen_addresses = 'localhost'",
        "unix_socket_directories = ''",
        "cluster_name = 'pgscale-restore'",
        'archive_mode = off',
        "synchronous_standby_names = ''",
        'ssl = off',
        '',
      ].join('\n'),
    { mode: 0o600 },
  );
  chownToService(conf);
  const pgconf = join(dir, 'postgresql.conf');
  if (!readFileSync(pgconf, 'utf8').includes(INCLUDE_LINE)) {
    writeFileSync(pgconf, readFileSync(pgconf, 'utf8') + `\n${INCLUDE_LINE}\n`);
  }
  const user = serviceUser();
  const pgCtl = `${cluster.bins.pgCtl} -D ${dir} -l ${join(dir, 'restore.log')} start`;
  return { dir, port, backup, startCommand: user ? `runuser -u ${user.name} -- ${pgCtl}` : pgCtl };
}

export interface RestoredInPlace {
  primary: string;
  backup: BackupInfo;
  rebuilt: string[];
}

/**
 * Restores group `group` as of `target` in place (see the top). The caller asked for confirmation;
 * the controller is stopped (high availability would otherwise restart the nodes).
 */
export async function restoreInPlace(
  cluster: Cluster,
  group: number,
  target: RestoreTarget,
  step: (m: string) => void,
  /** Stops the controller (after the WAL is flushed to the archive, before the nodes stop). */
  stopController: () => Promise<void>,
): Promise<RestoredInPlace> {
  const primary = cluster.primaryOf(group);
  if (!primary) throw new ClusterError(ErrorCodes.NO_PRIMARY, `group ${group} has no primary data directory`);
  const backup = await chooseBackup(cluster, group, target);
  await flushArchive(cluster, group);
  await stopController();
  await cluster.down();
  const { pgdata } = instancePaths(cluster.dataDir, primary.name);
  step(`restoring ${primary.name} from ${backup.label}`);
  await runRestore(cluster, group, [...restoreArgs(backup, target, pgdata), '--delta']);
  stripStandbySettings(pgdata);
  for (const f of [REJOIN_MARKER, 'standby.signal']) rmSync(join(pgdata, f), { force: true });
  const identity = cluster.identity();
  writeFileSync(
    join(pgdata, MARKER),
    JSON.stringify({ cluster_id: identity?.id, cluster: cluster.config.cluster.name, node: primary.name }) +
      '\n',
    { mode: 0o600 },
  );
  chownToService(join(pgdata, MARKER));
  step(
    `recovering ${primary.name} to ${target.type === 'default' ? 'the end of the archive' : target.target}`,
  );
  await cluster.startPrimary(primary);
  await waitPromoted(cluster, primary);
  const rebuilt: string[] = [];
  for (const n of cluster.nodes().filter((x) => x.group === group && x.name !== primary.name)) {
    step(`rebuilding ${n.name} from the restored ${primary.name}`);
    await cluster.addReplica(n);
    rebuilt.push(n.name);
  }
  await cluster.stopGroup(group);
  return { primary: primary.name, backup, rebuilt };
}

/**
 * Waits until the restored primary has finished recovery and promoted, then removes pgBackRest's
 * recovery settings from postgresql.auto.conf: a standby cloned from it (or this node, once it is
 * a standby after a failover) must not stop at the old recovery target.
 */
async function waitPromoted(cluster: Cluster, n: NodeRef): Promise<void> {
  const { pgdata, log } = instancePaths(cluster.dataDir, n.name);
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    if (runningPid(pgdata) === null) {
      throw new ClusterError(
        ErrorCodes.NODE_START_FAILED,
        `${n.name} stopped during recovery; see ${log}:\n${lastLines(readFileSync(log, 'utf8'), 8)}`,
      );
    }
    const inRecovery = await withClient(cluster.target(n), async (c) => {
      const r = await c.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec');
      return r.rows[0]?.rec ?? true;
    }).catch(() => true);
    if (!inRecovery) break;
    if (Date.now() > deadline)
      throw new ClusterError(ErrorCodes.TIMEOUT, `${n.name} did not finish recovery`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await withClient(cluster.target(n), async (c) => {
    for (const s of [
      'restore_command',
      'recovery_target_time',
      'recovery_target_lsn',
      'recovery_target_action',
    ]) {
      await c.query(`ALTER SYSTEM RESET ${s}`);
    }
    await c.query('SELECT pg_reload_conf()');
  });
}
