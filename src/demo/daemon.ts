/**
 * Another tool's process the demo runs beside its cluster (HAProxy, etcd, Patroni): started in the
 * foreground as the demo's child — as the service user when `asService` and the demo runs as root —
 * with its output in a log file, registered with the demo's cleanup so that no way out leaves it
 * behind, and stopped with SIGTERM (or SIGKILL at once when its state does not matter any more).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { cleanEnv, serviceUser } from '../cluster/run-as.js';
import { kill, waitExit } from './cluster.js';
import type { DemoCluster } from './cluster.js';

export interface Daemon {
  readonly pid: number;
  readonly log: string;
  exited(): boolean;
  /** SIGTERM (SIGKILL after 15 s), or SIGKILL at once with `now`. */
  stop(now?: boolean): Promise<void>;
  /** The last lines of its log. */
  tail(lines?: number): string;
}

export function startDaemon(
  cluster: Pick<DemoCluster, 'onCleanup'>,
  o: {
    name: string;
    file: string;
    args: readonly string[];
    log: string;
    cwd: string;
    asService?: boolean;
    env?: NodeJS.ProcessEnv;
  },
): Daemon {
  const u = o.asService ? serviceUser() : null;
  const out = openSync(o.log, 'a');
  let child: ChildProcess;
  try {
    child = spawn(o.file, o.args, {
      stdio: ['ignore', out, out],
      env: { ...cleanEnv(), ...o.env },
      cwd: o.cwd,
      ...(u ? { uid: u.uid, gid: u.gid } : {}),
    });
  } finally {
    closeSync(out);
  }
  child.once('error', () => undefined); // reported below
  // Never -1: kill(-1) would signal every process we may signal.
  if (child.pid === undefined) throw new Error(`could not start ${o.name} (${o.file})`);
  const pid = child.pid;
  let exited = false;
  child.once('exit', () => (exited = true));
  const stop = async (now = false) => {
    if (!exited) {
      kill(pid, now ? 'SIGKILL' : 'SIGTERM');
      if (!(await waitExit(pid, 15_000))) kill(pid, 'SIGKILL');
    }
    forget();
  };
  const forget = cluster.onCleanup(
    `${o.name} pid ${pid}`,
    () => stop(),
    () => {
      if (!exited) kill(pid, 'SIGKILL');
    },
  );
  return {
    pid,
    log: o.log,
    exited: () => exited,
    stop,
    tail(lines = 15) {
      try {
        return readFileSync(o.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '(no log)';
      }
    },
  };
}
