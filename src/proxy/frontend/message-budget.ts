/**
 * The proxy's process-wide budget for large client messages (`proxy.max_buffered_bytes`). The
 * proxy must hold a client message whole before it can route it (a Query's text decides where it
 * goes), so without a bound, N clients each sending a message of max_packet_size cost N times
 * that. A client whose framer has read the header of a message larger than
 * LARGE_MESSAGE_BYTES reserves the message's full length here before more of its body is read;
 * when the reservation cannot be had, the client's socket stops being read (the rest waits in the
 * kernel and in the client) and reservations are granted strictly in arrival order as others
 * release theirs. A reservation is released once the message has left the process (handed to a
 * server socket that took it, or answered) or its client is gone.
 *
 * Two rules keep this free of deadlock and starvation:
 * - a message larger than the whole budget (it can be up to max_packet_size) is granted when
 *   nothing else is reserved: it then waits for everything before it, and everything after it
 *   waits for it, so it is neither refused nor starved and memory stays below
 *   max(max_buffered_bytes, max_packet_size);
 * - messages up to LARGE_MESSAGE_BYTES never reserve and never wait: ordinary traffic does not
 *   queue behind a large upload. They are bounded per client by the threshold instead.
 */

/** Messages up to this size (header included) are read without a reservation. */
export const LARGE_MESSAGE_BYTES = 1024 * 1024;

/** A queued request; `grant` runs (synchronously, from `release`) when it is reserved. */
export interface BudgetTicket {
  readonly bytes: number;
  readonly grant: () => void;
}

export class MessageBudget {
  private usedBytes = 0;
  private readonly queue: BudgetTicket[] = [];
  /** Highest reserved total seen, for SHOW and the benchmarks. */
  peakBytes = 0;

  constructor(private limitBytes: number) {
    checkLimit(limitBytes);
  }

  get limit(): number {
    return this.limitBytes;
  }

  get used(): number {
    return this.usedBytes;
  }

  /** Requests queued for budget now. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Changes the limit (reload); a larger one may admit waiting requests at once. */
  setLimit(bytes: number): void {
    checkLimit(bytes);
    this.limitBytes = bytes;
    this.grantWaiting();
  }

  /**
   * Reserves `bytes` at once if nobody is queued before it and they fit (or nothing at all is
   * reserved: see the module comment); otherwise reserves nothing and returns false.
   */
  tryReserve(bytes: number): boolean {
    if (this.queue.length > 0 || !this.fits(bytes)) return false;
    this.take(bytes);
    return true;
  }

  /**
   * Queues a request that `tryReserve` just refused (so it is not granted here, only later from
   * `release`, `cancel` or `setLimit`); `cancel` it if the client goes away first.
   */
  enqueue(bytes: number, grant: () => void): BudgetTicket {
    const t: BudgetTicket = { bytes, grant };
    this.queue.push(t);
    return t;
  }

  cancel(t: BudgetTicket): void {
    const i = this.queue.indexOf(t);
    if (i < 0) return;
    this.queue.splice(i, 1);
    // The head may have been the one blocking smaller requests behind it.
    if (i === 0) this.grantWaiting();
  }

  release(bytes: number): void {
    if (bytes <= 0) return;
    this.usedBytes = Math.max(0, this.usedBytes - bytes);
    this.grantWaiting();
  }

  private fits(bytes: number): boolean {
    return this.usedBytes === 0 || this.usedBytes + bytes <= this.limitBytes;
  }

  private take(bytes: number): void {
    this.usedBytes += bytes;
    if (this.usedBytes > this.peakBytes) this.peakBytes = this.usedBytes;
  }

  /** Grants queued requests in order while the head fits; never skips the head (no starvation). */
  private grantWaiting(): void {
    while (this.queue.length > 0 && this.fits(this.queue[0]!.bytes)) {
      const t = this.queue.shift()!;
      this.take(t.bytes);
      t.grant();
    }
  }
}

function checkLimit(bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 1) {
    throw new RangeError(`the message budget must be a positive integer, got ${bytes}`);
  }
}
