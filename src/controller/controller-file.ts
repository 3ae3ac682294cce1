/**
 * `<data_dir>/controller.json`: which process is the cluster's controller on this host, and where
 * its HTTP API listens. It is both a lock (created atomically: written under a temporary name,
 * then hard-linked into place, which fails if the file exists) and the address book the CLI uses
 * to reach or stop the controller. A file naming a dead process (a controller killed with -9) is
 * stale and replaced; one naming a live process that is not pgscale (a reused pid) too.
 */
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, PgscaleError } from '../errors.js';
import type { ControllerInfo } from '../web/status-report.js';

export class ControllerError extends PgscaleError {}

export const CONTROLLER_FILE = 'controller.json';

export function controllerFilePath(dataDir: string): string {
  return join(dataDir, CONTROLLER_FILE);
}

export function readControllerFile(dataDir: string): ControllerInfo | null {
  try {
    const v = JSON.parse(readFileSync(controllerFilePath(dataDir), 'utf8')) as Partial<ControllerInfo>;
    if (typeof v.pid !== 'number' || typeof v.http?.port !== 'number' || typeof v.http.host !== 'string')
      return null;
    return { pid: v.pid, http: { host: v.http.host, port: v.http.port }, started_at: String(v.started_at) };
  } catch {
    return null;
  }
}

import { pidAlive } from '../cluster/instance.js';

export { pidAlive };

/**
 * Whether pid is a live pgscale process. Where /proc exists its command line must mention pgscale
 * (or be a node process), so that a pid reused by an unrelated program is not taken for ours.
 */
export function isControllerPid(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true;
  }
  return /pgscale|node/.test(cmdline);
}

/** The running controller of the cluster in dataDir, or null when there is none. */
export function liveController(dataDir: string): ControllerInfo | null {
  const info = readControllerFile(dataDir);
  return info && isControllerPid(info.pid) ? info : null;
}

/** Makes this process the controller: throws naming the pid when another live controller is. */
export function claimControllerFile(dataDir: string, info: ControllerInfo): void {
  const file = controllerFilePath(dataDir);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(info, null, 2) + '\n', { mode: 0o644 });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, file);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw e;
      }
      const other = readControllerFile(dataDir);
      if (other && other.pid !== info.pid && isControllerPid(other.pid)) {
        throw new ControllerError(
          ErrorCodes.USAGE,
          `another controller (pid ${other.pid}) is already running this cluster (${file}); ` +
            '`pgscale status` shows it, `pgscale down` stops it',
        );
      }
      rmSync(file, { force: true }); // stale: its process is gone
    }
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Removes controller.json if it still names pid (a successor's file is left alone). */
export function releaseControllerFile(dataDir: string, pid: number): void {
  if (readControllerFile(dataDir)?.pid === pid) rmSync(controllerFilePath(dataDir), { force: true });
}

export interface StopResult {
  pid: number;
  /** It did not stop within the time allowed and was killed (SIGKILL). */
  killed: boolean;
}

/**
 * Asks the running controller to stop (SIGTERM: it stops its services, its HTTP API and the
 * nodes, then exits) and waits for its process to end, at most timeoutMs; then kills it.
 * Returns null when no controller was running (a stale file is removed).
 */
export async function stopController(dataDir: string, timeoutMs = 120_000): Promise<StopResult | null> {
  const info = readControllerFile(dataDir);
  if (!info) return null;
  if (!isControllerPid(info.pid)) {
    releaseControllerFile(dataDir, info.pid);
    return null;
  }
  const { pid } = info;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    releaseControllerFile(dataDir, pid);
    return null;
  }
  const deadline = performance.now() + timeoutMs;
  while (pidAlive(pid) && performance.now() < deadline) await sleep(50);
  let killed = false;
  if (pidAlive(pid)) {
    killed = true;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    for (let i = 0; i < 100 && pidAlive(pid); i++) await sleep(50);
  }
  releaseControllerFile(dataDir, pid);
  return { pid, killed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The token the CLI sends for the HTTP API's changing endpoints (switchover, failover …). */
export function apiTokenPath(dataDir: string): string {
  return join(dataDir, 'api-token');
}

export function writeApiToken(dataDir: string, token: string): void {
  const p = apiTokenPath(dataDir);
  const tmp = `${p}.tmp-${process.pid}`;
  writeFileSync(tmp, token + '\n', { mode: 0o600 });
  renameSync(tmp, p);
}

export function removeApiToken(dataDir: string): void {
  rmSync(apiTokenPath(dataDir), { force: true });
}

export function readApiToken(dataDir: string): string | null {
  try {
    return readFileSync(apiTokenPath(dataDir), 'utf8').trim() || null;
  } catch {
    return null;
  }
}
