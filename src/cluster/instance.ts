/**
 * One PostgreSQL instance on this host, driven through its binaries: initdb, start, stop,
 * reload, and what can be read from the data directory without connecting (provisioned? standby?
 * running pid?). Each data directory carries a marker naming its cluster and node, so pgscale
 * never starts or overwrites a directory that belongs to something else.
 */
import {
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import type { PgBinaries } from './binaries.js';
import { ClusterError, ErrorCodes } from '../errors.js';
import { chownToService, run } from './run-as.js';

export const MARKER = 'pgscale-node.json';

export interface NodeMarker {
  cluster_id: string;
  cluster: string;
  node: string;
}

export interface InstancePaths {
  readonly pgdata: string;
  readonly log: string;
}

export function instancePaths(dataDir: string, node: string): InstancePaths {
  return { pgdata: join(dataDir, 'nodes', node), log: join(dataDir, 'logs', `${node}.log`) };
}

/** Written into a fenced former primary's data directory until it has rejoined as a standby. */
export const REJOIN_MARKER = 'pgscale-rejoin';

export function isProvisioned(pgdata: string): boolean {
  return existsSync(join(pgdata, 'PG_VERSION'));
}

export function isEmptyOrMissing(dir: string): boolean {
  return !existsSync(dir) || readdirSync(dir).length === 0;
}

export function isStandbyDir(pgdata: string): boolean {
  return existsSync(join(pgdata, 'standby.signal'));
}

export function readMarker(pgdata: string): NodeMarker | null {
  try {
    return JSON.parse(readFileSync(join(pgdata, MARKER), 'utf8')) as NodeMarker;
  } catch {
    return null;
  }
}

export function writeMarker(pgdata: string, m: NodeMarker): void {
  writeFileSync(join(pgdata, MARKER), JSON.stringify(m) + '\n', { mode: 0o600 });
}

export function dataMajorVersion(pgdata: string): number | null {
  try {
    return Number(readFileSync(join(pgdata, 'PG_VERSION'), 'utf8').trim());
  } catch {
    return null;
  }
}

/** The postmaster's pid if postmaster.pid names a live process, else null. */
export function runningPid(pgdata: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return pidAlive(pid) ? pid : null;
}

/** Whether pid names a running process (a zombie, dead but not yet reaped, does not count). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return !existsSync('/proc/self/stat'); // no /proc (macOS): kill(0) is all we know
  }
}

/**
 * Server processes still running in `pgdata` while its postmaster is dead. Every PostgreSQL
 * process works in its data directory (its cwd), and the children of a killed postmaster exit
 * only once they notice its death: under CPU or I/O load that can take seconds, during which they
 * hold its shared memory and a new postmaster (or pg_rewind's single-user crash recovery) refuses
 * to start with "pre-existing shared memory block … is still in use". Linux /proc; empty elsewhere.
 */
export function orphanedServerPids(pgdata: string): number[] {
  let dir: string;
  let entries: string[];
  try {
    dir = realpathSync(pgdata);
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      if (readlinkSync(`/proc/${e}/cwd`) !== dir) continue;
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      let exe = '';
      try {
        exe = basename(readlinkSync(`/proc/${e}/exe`));
      } catch {
        // not ours to read: the command line decides
      }
      if ((exe.startsWith('postgres') || cmd.startsWith('postgres')) && pidAlive(pid)) out.push(pid);
    } catch {
      // gone meanwhile, or another user's
    }
  }
  return out;
}

/**
 * Before a node whose postmaster is gone starts again: waits up to `graceMs` for the leftovers of
 * the old server to exit by themselves, then SIGKILLs those still there (their postmaster is dead,
 * so nothing they do counts: crash recovery redoes it). Returns how many had to be killed.
 */
export async function clearOrphanedServer(pgdata: string, graceMs = 5000): Promise<number> {
  if (runningPid(pgdata) !== null) return 0;
  const deadline = Date.now() + graceMs;
  let left = orphanedServerPids(pgdata);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = orphanedServerPids(pgdata);
  }
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  const killDeadline = Date.now() + 10_000;
  while (left.length > 0 && orphanedServerPids(pgdata).length > 0 && Date.now() < killDeadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return left.length;
}

export async function initdb(
  bins: PgBinaries,
  pgdata: string,
  opts: { superuser: string; pwfile: string; locale: string },
): Promise<void> {
  await run(
    bins.initdb,
    [
      '-D',
      pgdata,
      '--data-checksums',
      '-U',
      opts.superuser,
      `--pwfile=${opts.pwfile}`,
      '--auth=scram-sha-256',
      '-E',
      'UTF8',
      `--locale=${opts.locale}`,
      '--no-instructions',
    ],
    { timeoutMs: 180_000 },
  );
}

export async function start(
  bins: PgBinaries,
  paths: InstancePaths,
  node: string,
  timeoutS = 60,
  /** The server's environment beyond ours (PGPASSFILE: what its subscriptions' libpq reads). */
  env?: NodeJS.ProcessEnv,
): Promise<number> {
  // A pid file naming a dead or zombie postmaster (nothing reaps orphans in some containers)
  // would make PostgreSQL refuse to start; so would processes of a killed server still holding its
  // shared memory.
  if (runningPid(paths.pgdata) === null) {
    await clearOrphanedServer(paths.pgdata);
    rmSync(join(paths.pgdata, 'postmaster.pid'), { force: true });
  }
  try {
    await run(
      bins.pgCtl,
      ['start', '-D', paths.pgdata, '-l', paths.log, '-w', '-t', String(timeoutS), '-s'],
      {
        detached: true,
        timeoutMs: (timeoutS + 15) * 1000,
        ...(env ? { env } : {}),
      },
    );
  } catch (e) {
    throw new ClusterError(
      ErrorCodes.NODE_START_FAILED,
      `node ${node} did not start; see its log ${paths.log}:\n${tailFile(paths.log, 8)}`,
      { cause: e },
    );
  }
  const pid = runningPid(paths.pgdata);
  if (pid !== null) return pid;
  // pg_ctl saw it ready, and it is gone already. A server that stops by itself (a standby whose
  // timeline has diverged, say) removes postmaster.pid as it exits: that start failed. A server
  // killed (kill -9, the OOM killer) leaves the file behind: that start worked, the node died
  // afterwards, and whoever watches it (HA) sees it down and restarts it. Calling that a failed
  // start made HA rewind or re-clone a healthy standby, and no restart reached the history.
  const killed = pidInFile(paths.pgdata);
  if (killed !== null) return killed;
  throw new ClusterError(
    ErrorCodes.NODE_START_FAILED,
    `node ${node} exited right after starting; see ${paths.log}`,
  );
}

/** The pid postmaster.pid names, alive or not; null without a readable file. */
function pidInFile(pgdata: string): number | null {
  try {
    const pid = Number(readFileSync(join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export type StopMode = 'smart' | 'fast' | 'immediate';

export async function stop(bins: PgBinaries, pgdata: string, mode: StopMode = 'fast'): Promise<void> {
  if (runningPid(pgdata) === null) return;
  await run(bins.pgCtl, ['stop', '-D', pgdata, '-m', mode, '-w', '-t', '120', '-s'], {
    timeoutMs: 150_000,
    allowFail: true,
  });
  if (runningPid(pgdata) !== null && mode !== 'immediate') await stop(bins, pgdata, 'immediate');
}

export async function reload(bins: PgBinaries, pgdata: string): Promise<void> {
  if (runningPid(pgdata) === null) return;
  await run(bins.pgCtl, ['reload', '-D', pgdata, '-s'], { timeoutMs: 30_000 });
}

export function tailFile(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The pid in postmaster.pid (alive or not), or null. */
export function postmasterPidOf(pgdata: string): number | null {
  try {
    const pid = Number(readFileSync(join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Direct children of a process, from /proc (empty where there is no /proc). */
function childPids(parent: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * SIGKILL to a postmaster and to every process it forked (collected first: once the postmaster is
 * gone they are re-parented), which works on a frozen (SIGSTOP) server too. Returns how many
 * processes were signalled.
 */
export function killServerTree(pid: number): number {
  let killed = 0;
  for (const p of [pid, ...childPids(pid)]) {
    try {
      process.kill(p, 'SIGKILL');
      killed++;
    } catch {
      // already gone
    }
  }
  return killed;
}

/** standby.signal and the rejoin marker: the data directory never starts as a primary again. */
export function writeFenceMarkers(pgdata: string): void {
  for (const f of ['standby.signal', REJOIN_MARKER]) {
    writeFileSync(join(pgdata, f), '', { mode: 0o600 });
    chownToService(join(pgdata, f));
  }
}
