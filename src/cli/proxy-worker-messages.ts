/**
 * What the primary of `pgscale proxy --workers N` and its workers say to each other over the
 * cluster IPC channel (JSON): the primary starts each worker with its number and configuration,
 * forwards cancel requests to the worker holding the client, and runs an admin console's
 * SHOW, PAUSE, RESUME, KILL and RELOAD on every worker ("do", one "done" each), as well as the
 * scrape of /metrics. A worker asks the primary for such a round ("ask") and gets every worker's
 * answer back ("answer"). Cancel keys travel in base64 and are never logged.
 */
import type { ProxyConfig } from '../config/schema.js';
import type { PoolCommand } from '../proxy/admin-view.js';
import { UsageError } from '../errors.js';

/** One question every worker answers about, or does to, its own proxy. */
export type WorkerTask =
  | { kind: 'show'; what: string }
  | { kind: 'pool'; cmd: PoolCommand; arg?: string }
  | { kind: 'reload'; config: ProxyConfig }
  | { kind: 'metrics' }
  | { kind: 'health' };

/** What a worker asks of the primary: a round over every worker, a reload, or the end. */
export type WorkerAsk = WorkerTask | { kind: 'reload-all' } | { kind: 'shutdown' };

export interface WorkerResult {
  worker: number;
  result: unknown;
}

export type FromWorker =
  | { t: 'hello' }
  /** `cancelId`: the number in its clients' process ids (with --cluster its proxy number). */
  | { t: 'ready'; host: string; port: number; cancelId?: number }
  | { t: 'failed'; message: string; code: string }
  | { t: 'cancel'; pid: number; key: string }
  | { t: 'ask'; id: number; ask: WorkerAsk }
  | { t: 'done'; id: number; result?: unknown; error?: string };

export type ToWorker =
  | { t: 'start'; instance: number; config: ProxyConfig }
  | { t: 'cancel'; pid: number; key: string }
  | { t: 'do'; id: number; task: WorkerTask }
  | { t: 'answer'; id: number; results?: WorkerResult[]; error?: string }
  | { t: 'stop' };

/** --workers N | auto (proxy.workers' values); `cpus`: what auto means here. */
export function parseWorkers(v: string | number, cpus: number): number {
  if (v === 'auto') return Math.max(1, cpus);
  const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new UsageError(`--workers: expected a number from 1 to 64 or auto, got "${String(v)}"`);
  return n;
}
