/**
 * Gives back the memory a burst of work leaves behind once the proxy is idle. A burst of logins
 * (or of transactions) grows V8's young generation from 1 MB to its maximum (two 16 MB
 * semi-spaces) and leaves garbage in the old one; V8 shrinks them only at a garbage collection
 * that sees a low allocation rate, and a proxy whose clients all idle runs none, so those ~32 MB
 * stayed resident for good: 3 kB per client at 10,000 idle clients, as much as the clients
 * themselves (docs/benchmarks.md, issue #14).
 *
 * So the process checks every CHECK_MS whether its event loop was almost idle over that time
 * (utilisation under QUIET_ELU) while the young generation is still grown (over
 * GROWN_NEW_SPACE); then it runs one full collection, which V8 ends by shrinking the young
 * generation to its minimum. It does so at most once per busy spell: it re-arms only after a
 * check that saw the loop busy, so an idle proxy collects once and then sleeps. A collection of
 * a proxy with 10,000 idle clients takes tens of milliseconds, at a moment when nothing is being
 * asked of it. One per process, however many proxies it runs (tests start several).
 *
 * The collection needs the `gc` function Node gives only with --expose-gc: the flag is set at run
 * time and the function taken from a fresh context, once, at the first collection. Should that
 * fail, nothing more is tried.
 */
import { performance } from 'node:perf_hooks';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** How often (ms) the loop's utilisation is looked at: longer than V8's 5 s throughput window. */
export const CHECK_MS = 10_000;
/** Under this event-loop utilisation over CHECK_MS the process counts as idle. */
export const QUIET_ELU = 0.02;
/** A young generation over this many bytes is still grown (its minimum is 1 MB). */
export const GROWN_NEW_SPACE = 4 * 1024 * 1024;

/** What one check decides: collect now, or not; and whether to be armed afterwards. */
export function decide(
  armed: boolean,
  elu: number,
  newSpaceBytes: number,
): { collect: boolean; armed: boolean } {
  if (elu >= QUIET_ELU) return { collect: false, armed: true };
  if (armed && newSpaceBytes > GROWN_NEW_SPACE) return { collect: true, armed: false };
  return { collect: false, armed };
}

/** Bytes V8 holds for the young generation now (both semi-spaces). */
export function newSpaceBytes(): number {
  for (const s of getHeapSpaceStatistics()) if (s.space_name === 'new_space') return s.space_size;
  return 0;
}

type GcFunction = () => void;
let gcFn: GcFunction | null | undefined;

function collector(): GcFunction | null {
  if (gcFn !== undefined) return gcFn;
  try {
    setFlagsFromString('--expose-gc');
    const f: unknown = runInNewContext('gc');
    gcFn = typeof f === 'function' ? (f as GcFunction) : null;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

export class IdleMemory {
  private users = 0;
  private timer: NodeJS.Timeout | null = null;
  private last: EventLoopUtilization | null = null;
  private armed = true;
  /** Collections run so far. */
  collections = 0;

  constructor(private readonly checkMs: number) {}

  acquire(): void {
    if (this.users++ > 0) return;
    this.last = performance.eventLoopUtilization();
    this.timer = setInterval(() => this.check(), this.checkMs);
    this.timer.unref();
  }

  release(): void {
    if (this.users === 0 || --this.users > 0) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private check(): void {
    const now = performance.eventLoopUtilization();
    const elu = this.last ? performance.eventLoopUtilization(now, this.last).utilization : 1;
    this.last = now;
    const d = decide(this.armed, elu, newSpaceBytes());
    this.armed = d.armed;
    if (!d.collect) return;
    const gc = collector();
    if (!gc) return;
    gc();
    this.collections++;
    // The collection's own time must not count as work at the next check.
    this.last = performance.eventLoopUtilization();
  }
}

/** The process's one instance; each proxy acquires it at start and releases it at stop. */
export const idleMemory = new IdleMemory(CHECK_MS);
