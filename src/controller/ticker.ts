/**
 * A periodic task on the monotonic clock: ticks at start + k·interval (performance.now(), which
 * wall-clock changes do not move), never overlapping itself; a tick that overruns skips the ticks
 * it missed instead of firing them in a burst. Errors are handed to onError and the loop goes on.
 */
import { performance } from 'node:perf_hooks';

export interface Ticker {
  /** Stops ticking and waits for a tick in progress to finish. */
  stop(): Promise<void>;
}

export function every(
  intervalMs: number,
  fn: () => Promise<void> | void,
  onError: (e: unknown) => void,
): Ticker {
  const t0 = performance.now();
  let k = 0;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    const now = performance.now();
    k = Math.max(k + 1, Math.ceil((now - t0) / intervalMs));
    timer = setTimeout(tick, Math.max(0, t0 + k * intervalMs - now));
  };
  const tick = () => {
    timer = null;
    running = (async () => {
      try {
        await fn();
      } catch (e) {
        onError(e);
      }
    })().finally(() => {
      running = null;
      schedule();
    });
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      if (running) await running;
    },
  };
}
