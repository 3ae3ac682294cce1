/**
 * The clients waiting for a pool's connection: a FIFO, and one timer for their
 * query_wait_timeout set at the earliest deadline. A timer per waiter would cost a timer-list
 * insertion and removal for every transaction that queues, which is most of them with more
 * clients than connections.
 */
import { now } from '../types.js';
import { Fifo } from './fifo.js';
import type { ServerConn, ServerLoginError } from './server-conn.js';

export interface Waiter {
  ready: (c: ServerConn) => void;
  fail: (e: ServerLoginError) => void;
  since: number;
  /** When query_wait_timeout fails it (now() clock), or Infinity. */
  deadline: number;
}

export class WaitQueue extends Fifo<Waiter> {
  private timer: NodeJS.Timeout | null = null;

  /** `timedOut` is told of each waiter whose deadline passed (it is already out of the queue). */
  constructor(private readonly timedOut: (w: Waiter) => void) {
    super();
  }

  override push(w: Waiter): void {
    super.push(w);
    if (this.timer === null && w.deadline !== Infinity) this.arm(w.deadline);
  }

  /** No more time-outs (the pool is closing). */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(deadline: number): void {
    this.timer = setTimeout(() => this.expire(), Math.max(1, deadline - now()));
    this.timer.unref();
  }

  private expire(): void {
    this.timer = null;
    const t = now();
    for (const w of this.removeWhere((x) => x.deadline <= t)) this.timedOut(w);
    // The earliest deadline (a RELOAD may have changed the timeout between waiters).
    let next = Infinity;
    for (const w of this) if (w.deadline < next) next = w.deadline;
    if (next !== Infinity) this.arm(next);
  }
}
