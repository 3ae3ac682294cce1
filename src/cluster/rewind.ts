/**
 * pg_rewind of a former primary's data directory from the current primary, so that it can follow
 * it as a standby (cluster.ts's rejoin). Whatever happens, the directory is left fenced
 * (standby.signal and the rejoin marker): it never starts as a primary again.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { PgBinaries } from './binaries.js';
import { runningPid, writeFenceMarkers } from './instance.js';
import { run } from './run-as.js';
import type { ConnTarget } from './sql.js';
import { withClient } from './sql.js';

export interface RewindOptions {
  readonly bins: PgBinaries;
  readonly pgdata: string;
  /** The current primary, as the superuser. */
  readonly source: ConnTarget;
  /** libpq TLS parameters for the source (empty without cluster TLS). */
  readonly ssl: readonly string[];
  readonly passfile: string;
}

export async function rewindDataDir(o: RewindOptions): Promise<void> {
  // pg_rewind reads the source's timeline from its control file, which a promotion updates
  // only at the next checkpoint: without one it would find "no rewind required" and leave the
  // diverged WAL in place.
  await withClient(o.source, (c) => c.query('CHECKPOINT'));
  // A killed postmaster may linger as a zombie where nothing reaps orphans (containers):
  // PostgreSQL would take its pid file for a live server.
  if (runningPid(o.pgdata) === null) rmSync(join(o.pgdata, 'postmaster.pid'), { force: true });
  // Single-user crash recovery (run by pg_rewind for a killed server) refuses standby mode.
  rmSync(join(o.pgdata, 'standby.signal'), { force: true });
  rmSync(join(o.pgdata, 'recovery.signal'), { force: true });
  const src = o.source;
  const conninfo = [
    `host=${src.host} port=${src.port} user=${src.user} dbname=postgres connect_timeout=10`,
    ...o.ssl,
  ].join(' ');
  try {
    await run(o.bins.pgRewind!, ['-D', o.pgdata, `--source-server=${conninfo}`], {
      env: { PGPASSFILE: o.passfile },
      timeoutMs: 30 * 60_000,
    });
  } finally {
    // pg_rewind removed our rejoin marker (a file the source does not have): it goes back too,
    // so the node stays fenced (in status, and for the next cycle if the start below fails)
    // until it runs as a standby and rejoin() removes it.
    writeFenceMarkers(o.pgdata);
  }
}
