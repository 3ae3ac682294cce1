/**
 * Back-off of failing HA actions: a failing action is retried after loop_wait × 2^failures (at
 * most 30 s) instead of failing, and writing to the store, every cycle; only the first failure of
 * a streak is news (logged as an error and written to history).
 */
import { performance } from 'node:perf_hooks';
import type { Action } from './decide.js';

/** A failing action is retried after loop_wait × 2^failures, at most this long (ms). */
export const FAILURE_BACKOFF_MAX_MS = 30_000;

export type Failures = Map<string, { message: string; count: number; retryAt: number }>;

/** An action's key for its back-off: its kind and the node it is about. */
export function actionKey(a: Action): string {
  return `${a.kind}:${'node' in a ? a.node : 'to' in a ? a.to : ''}`;
}

/** Whether the action failed a moment ago and is still waiting out its back-off. */
export function backingOff(failures: Failures, a: Action, now = performance.now()): boolean {
  const f = failures.get(actionKey(a));
  return f !== undefined && now < f.retryAt;
}

/**
 * Counts a failure of an action (by key) and sets its back-off. By key alone: a failure's message
 * often carries times and pids (a log tail). A streak ends when the action was not tried again
 * soon after its back-off (nothing needed it).
 */
export function noteFailure(
  failures: Failures,
  key: string,
  message: string,
  loopMs: number,
  now = performance.now(),
): { news: boolean; count: number; delayMs: number } {
  const last = failures.get(key);
  const prev = last && now - last.retryAt < FAILURE_BACKOFF_MAX_MS ? last : undefined;
  const count = (prev?.count ?? 0) + 1;
  const delayMs = Math.min(loopMs * 2 ** count, FAILURE_BACKOFF_MAX_MS);
  failures.set(key, { message, count, retryAt: now + delayMs });
  return { news: prev === undefined, count, delayMs };
}
