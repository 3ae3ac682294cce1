/**
 * `pgscale backup`, `backups`, `verify` and `restore`: backups and point-in-time recovery with
 * pgBackRest (src/backup/, docs/backup.md). They run pgBackRest on this host as the user
 * PostgreSQL runs as, with or without a running controller; an in-place restore stops the
 * controller first (high availability would restart the nodes it restores).
 */
import type { Cluster } from '../../cluster/cluster.js';
import { listBackups, takeBackup, verifyBackups, groupOption } from '../../backup/backups.js';
import type { GroupBackups, VerifyResult } from '../../backup/backups.js';
import { restoreInPlace, restoreInto } from '../../backup/restore.js';
import type { BackupType } from '../../backup/schedule.js';
import { parseTarget } from '../../backup/target.js';
import { liveController, stopController } from '../../controller/controller-file.js';
import { UsageError } from '../../errors.js';
import { intOption, parse } from '../args.js';
import { openCluster, out, progress } from '../context.js';
import { formatBytes, table } from '../table.js';

export const backupHelp = `Usage: pgscale backup [-c FILE] [--type full|diff|incr] [--group N] [--json]

Takes a backup of every group (or of group N) now with pgBackRest: full (default), diff (what
changed since the last full) or incr (since the last backup of any kind). It is read from a
streaming standby when the group has one (backup.from_standby), else from the primary. Needs
backup.enabled: true and pgbackrest installed (docs/backup.md).
`;

export const backupsHelp = `Usage: pgscale backups [-c FILE] [--group N] [--json] [--verify]

Lists each group's backups: label, type, start and stop time, database size, what it added to
the repository, and the WAL range it needs; then the WAL held in the repository.
--verify also checks every file of the repository against its checksum (as \`pgscale verify\`).
`;

export const verifyHelp = `Usage: pgscale verify [-c FILE] [--group N] [--json]

Runs \`pgbackrest verify\` on each group's repository: every backup file and WAL segment is
checked against its checksum. Exits 1 when something is missing or damaged, naming it.
`;

export const restoreHelp = `Usage: pgscale restore [-c FILE] --to TIME|LSN|latest [--group N] (--into DIR | --in-place --yes)

Point-in-time recovery of group N (default 0) from its backups: the newest backup that ended
before the target is restored and the archived WAL replayed up to the target, then promoted.
  --to TIME      a time, 2026-12-07T14:00:00Z or '2026-12-07 15:00:00+01' (no zone: local time)
  --to LSN       a WAL position, 0/3000060
  --to latest    everything archived
  --into DIR     restore into DIR (new or empty): a plain PostgreSQL data directory with
                 archiving off and a free port; the command that starts it is printed. The
                 cluster is not touched.
  --in-place     replace the group's data: stops the controller and the nodes, restores the
                 primary, clones its standbys again from it, and leaves the cluster stopped:
                 \`pgscale up\` starts it. Everything written after the target is lost, so it
                 needs --yes.
`;

const groupOf = (cluster: Cluster, v: string | boolean | undefined) =>
  intOption('group', v, 0, cluster.config.groups.length - 1);

export async function backup(argv: string[]): Promise<number> {
  const { values } = parse('backup', argv, {
    type: { type: 'string' },
    group: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) return (out(backupHelp), 0);
  const type = (values.type ?? 'full') as BackupType;
  if (!['full', 'diff', 'incr'].includes(type)) {
    throw new UsageError(`--type must be full, diff or incr, got "${String(values.type)}"`);
  }
  const cluster = openCluster(values);
  const taken = [];
  for (const group of groupOption(cluster, groupOf(cluster, values.group))) {
    if (!values.json) progress.step(`taking a ${type} backup of group ${group}`);
    const t0 = Date.now();
    const r = await takeBackup(cluster, group, type);
    taken.push({ ...r, seconds: (Date.now() - t0) / 1000 });
    if (!values.json) {
      out(
        `group ${group}: ${r.backup.type} backup ${r.backup.label} from ${r.from ? `standby ${r.from}` : 'the primary'}, ` +
          `${formatBytes(r.backup.size)} (${formatBytes(r.backup.repoSize)} in the repository), ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
    }
  }
  if (values.json) out(JSON.stringify({ backups: taken }, null, 2));
  return 0;
}

export async function backups(argv: string[]): Promise<number> {
  const { values } = parse('backups', argv, {
    group: { type: 'string' },
    json: { type: 'boolean' },
    verify: { type: 'boolean' },
  });
  if (values.help) return (out(backupsHelp), 0);
  const cluster = openCluster(values);
  const groups = groupOption(cluster, groupOf(cluster, values.group));
  const list = await listBackups(cluster, groups);
  const verified = values.verify ? await verifyBackups(cluster, groups) : null;
  if (values.json) {
    out(JSON.stringify({ groups: list, ...(verified ? { verify: verified } : {}) }, null, 2));
  } else {
    printBackups(list);
    if (verified) printVerify(verified);
  }
  return verified?.some((v) => !v.ok) ? 1 : 0;
}

function printBackups(list: GroupBackups[]): void {
  const rows = list.flatMap((g) =>
    g.backups.map((b) => [
      g.group,
      b.label,
      b.type,
      b.start,
      b.stop,
      formatBytes(b.size),
      formatBytes(b.repoSize),
      b.walStart && b.walStop ? `${b.walStart}..${b.walStop}` : null,
    ]),
  );
  if (rows.length) out(table(['GROUP', 'LABEL', 'TYPE', 'START', 'STOP', 'SIZE', 'REPO', 'WAL'], rows));
  for (const g of list) {
    out(
      `group ${g.group} (stanza ${g.stanza}): ${g.backups.length} backup(s), status ${g.status}` +
        (g.walMin ? `, WAL ${g.walMin}..${g.walMax}` : ', no WAL archived yet'),
    );
  }
}

function printVerify(results: VerifyResult[]): void {
  for (const v of results) {
    out(`group ${v.group}: ${v.ok ? 'verified, every file matches its checksum' : 'PROBLEMS FOUND'}`);
    for (const p of v.problems) out(`  ${p}`);
  }
}

export async function verify(argv: string[]): Promise<number> {
  const { values } = parse('verify', argv, { group: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) return (out(verifyHelp), 0);
  const cluster = openCluster(values);
  const results = await verifyBackups(cluster, groupOption(cluster, groupOf(cluster, values.group)));
  if (values.json) out(JSON.stringify({ verify: results }, null, 2));
  else printVerify(results);
  return results.some((v) => !v.ok) ? 1 : 0;
}

export async function restore(argv: string[]): Promise<number> {
  const { values } = parse('restore', argv, {
    to: { type: 'string' },
    group: { type: 'string' },
    into: { type: 'string' },
    'in-place': { type: 'boolean' },
    yes: { type: 'boolean' },
  });
  if (values.help) return (out(restoreHelp), 0);
  const target = parseTarget(values.to as string | undefined);
  const into = typeof values.into === 'string' ? values.into : null;
  const inPlace = values['in-place'] === true;
  if ((into === null) === !inPlace) {
    throw new UsageError(
      'name where to restore: --into DIR (a new directory) or --in-place --yes (see pgscale restore --help)',
    );
  }
  const cluster = openCluster(values);
  const group = groupOf(cluster, values.group) ?? 0;
  if (into !== null) {
    const r = await restoreInto(cluster, group, target, into);
    out(
      `restored group ${group} from backup ${r.backup.label} into ${r.dir} (port ${r.port}, archiving off)`,
    );
    out(`start it with:\n  ${r.startCommand}`);
    out(`it recovers to ${values.to} and is promoted; connect with the superuser's password:`);
    out(`  psql "host=localhost port=${r.port} user=${cluster.config.postgres.superuser} dbname=postgres"`);
    return 0;
  }
  if (values.yes !== true) {
    throw new UsageError(
      `restore --in-place replaces group ${group}'s data with its state as of ${values.to}: everything written ` +
        `after that is lost. Add --yes to confirm (nothing was changed)`,
    );
  }
  const r = await restoreInPlace(
    cluster,
    group,
    target,
    (m) => progress.step(m),
    async () => {
      if (!liveController(cluster.dataDir)) return;
      progress.step('stopping the controller');
      await stopController(cluster.dataDir);
    },
  );
  out(
    `restored group ${group} in place from backup ${r.backup.label}: ${r.primary} is its primary` +
      (r.rebuilt.length ? `, ${r.rebuilt.join(', ')} cloned again from it` : ''),
  );
  out('the cluster is stopped: `pgscale up` starts it');
  return 0;
}
