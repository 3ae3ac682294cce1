/**
 * Clones a standby from its primary. With pg_basebackup (the normal path): a fast checkpoint,
 * WAL streamed alongside, a physical slot created for the new standby. Without it (the embedded
 * binaries ship only initdb, pg_ctl and postgres): the low-level backup API
 * (https://www.postgresql.org/docs/current/continuous-archiving.html#BACKUP-LOWLEVEL-BASE-BACKUP):
 * create the slot first so WAL from the backup's start is kept, pg_backup_start, copy the files,
 * pg_backup_stop, write its backup_label into the copy. The standby then fetches the WAL it needs
 * through its slot. Copying files is only correct on the primary's own host, which is where we
 * provision today.
 */
import {
  copyFileSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { join } from 'node:path';
import type { PgBinaries } from './binaries.js';
import { REPLICATION_USER } from './secrets.js';
import { sslEnv } from './conf.js';
import type { ClientPair } from './conf.js';
import { run, serviceUser } from './run-as.js';
import { withClient } from './sql.js';
import type { ConnTarget } from './sql.js';
import { spawnSync } from 'node:child_process';

export interface CloneInput {
  bins: PgBinaries;
  primary: ConnTarget & { pgdata: string };
  target: string;
  slot: string;
  passfile: string;
  appName: string;
  /** The cluster CA's certificate (cluster.tls on): pg_basebackup verifies the primary with it. */
  rootCert: string | null;
  /** The new standby's own pair, its client certificate for replication (cluster.tls on). */
  client?: ClientPair;
}

/** Drops the slot if it exists and no one streams from it (a retry after a failed clone). */
export async function dropSlotIfIdle(primary: ConnTarget, slot: string): Promise<void> {
  await withClient(primary, async (c) => {
    await c.query(
      'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
      [slot],
    );
  });
}

export async function cloneStandby(i: CloneInput): Promise<'pg_basebackup' | 'low-level'> {
  await dropSlotIfIdle(i.primary, i.slot);
  if (i.bins.pgBasebackup) {
    await run(
      i.bins.pgBasebackup,
      [
        '-h',
        i.primary.host,
        '-p',
        String(i.primary.port),
        '-U',
        REPLICATION_USER,
        '-D',
        i.target,
        '-C',
        '-S',
        i.slot,
        '--checkpoint=fast',
        '-X',
        'stream',
        '-R',
        '--no-password',
      ],
      {
        env: {
          PGPASSFILE: i.passfile,
          PGAPPNAME: i.appName,
          PGCONNECT_TIMEOUT: '10',
          ...sslEnv(i.rootCert, i.client),
        },
        timeoutMs: 30 * 60_000,
      },
    );
    return 'pg_basebackup';
  }
  await lowLevelClone(i);
  return 'low-level';
}

async function lowLevelClone(i: CloneInput): Promise<void> {
  const major = i.bins.major;
  await withClient(
    i.primary,
    async (c) => {
      await c.query('SELECT pg_create_physical_replication_slot($1, true)', [i.slot]);
      const label = `pgscale clone ${i.appName}`;
      if (major >= 15) await c.query('SELECT pg_backup_start($1, true)', [label]);
      else await c.query('SELECT pg_start_backup($1, true, false)', [label]);
      let stopped = false;
      try {
        copyTree(i.primary.pgdata, i.target, '');
        const r =
          major >= 15
            ? await c.query<{ labelfile: string; spcmapfile: string | null }>(
                'SELECT labelfile, spcmapfile FROM pg_backup_stop(false)',
              )
            : await c.query<{ labelfile: string; spcmapfile: string | null }>(
                'SELECT labelfile, spcmapfile FROM pg_stop_backup(false, false)',
              );
        stopped = true;
        const row = r.rows[0]!;
        writeFileSync(join(i.target, 'backup_label'), row.labelfile, { mode: 0o600 });
        if (row.spcmapfile) writeFileSync(join(i.target, 'tablespace_map'), row.spcmapfile, { mode: 0o600 });
      } finally {
        if (!stopped) {
          // Leave the primary out of backup mode whatever happened to the copy.
          await c
            .query(major >= 15 ? 'SELECT pg_backup_stop(false)' : 'SELECT pg_stop_backup(false, false)')
            .catch(() => undefined);
        }
      }
    },
    30_000,
  );
  chmodSync(i.target, 0o700);
  const u = serviceUser();
  if (u) {
    const r = spawnSync('chown', ['-R', `${u.uid}:${u.gid}`, i.target]);
    if (r.status !== 0) throw new Error(`chown of ${i.target} failed: ${r.stderr?.toString()}`);
  }
}

// Directories whose contents a base backup must not carry (docs: "Backing Up the Data Directory").
const EMPTY_DIRS = new Set([
  'pg_wal',
  'pg_replslot',
  'pg_stat_tmp',
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_subtrans',
]);
const SKIP_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'backup_label',
  'backup_label.old',
  'tablespace_map',
  'current_logfiles',
  'standby.signal',
  'recovery.signal',
  'pg_internal.init',
]);

/** Copies a live data directory; files that vanish during the copy are skipped (WAL replay fixes them). */
function copyTree(src: string, dst: string, rel: string): void {
  mkdirSync(dst, { recursive: true, mode: 0o700 });
  let names: string[];
  try {
    names = readdirSync(src);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  for (const name of names) {
    const s = join(src, name);
    const d = join(dst, name);
    const r = rel ? `${rel}/${name}` : name;
    if (SKIP_FILES.has(name) || name.startsWith('pgsql_tmp')) continue;
    let st;
    try {
      st = lstatSync(s);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      if (!rel && EMPTY_DIRS.has(name)) {
        mkdirSync(d, { mode: 0o700 });
        if (name === 'pg_wal') mkdirSync(join(d, 'archive_status'), { mode: 0o700 });
        continue;
      }
      copyTree(s, d, r);
    } else if (st.isSymbolicLink()) {
      symlinkSync(readlinkSync(s), d);
    } else if (st.isFile()) {
      try {
        copyFileSync(s, d);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
  }
}
