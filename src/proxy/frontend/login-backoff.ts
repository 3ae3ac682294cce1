/**
 * Back-off for failed logins, per client address. A few failures in a window are free; after
 * them each further password check from that address waits its turn: turns are spaced by a delay
 * that doubles with every failure, up to a cap. The wait comes *before* the password is checked,
 * so a client cannot learn the answer sooner by hanging up early, and parallel connections from
 * one address are serialised rather than waiting together. Connections waiting their turn are
 * bounded per address; beyond that new ones from it are refused before authentication. A
 * successful login from an address forgets it. Memory is bounded: at most `maxAddresses` entries,
 * least recently failed first out, and an entry expires `windowMs` after its last failure.
 * Time is passed in, so the class is pure and testable.
 */

export interface BackoffSettings {
  /** Failures an address may have in a window before its logins are delayed. */
  readonly threshold: number;
  /** Delay after the first failure beyond the threshold (ms); doubles with each further one. */
  readonly baseMs: number;
  /** Longest delay between two password checks of one address (ms). */
  readonly capMs: number;
  /** An address's failures are forgotten this long after its last one (ms). */
  readonly windowMs: number;
  /** Addresses remembered at most (least recently failed evicted first). */
  readonly maxAddresses: number;
  /** Logins of an address in back-off that may be under way at once; more are refused. */
  readonly maxWaiting: number;
}

export const DEFAULT_BACKOFF: BackoffSettings = {
  threshold: 3,
  baseMs: 250,
  capMs: 4000,
  windowMs: 60_000,
  maxAddresses: 10_000,
  maxWaiting: 8,
};

interface Entry {
  failures: number;
  /** Time of the last failure. */
  last: number;
  /** The last turn given out: the next one is at least one delay later. */
  turn: number;
  waiting: number;
  /** Attempts refused (too many waiting) since the last failure was reported. */
  refused: number;
}

export class LoginBackoff {
  private readonly entries = new Map<string, Entry>();
  readonly settings: BackoffSettings;

  constructor(settings: Partial<BackoffSettings> = {}) {
    this.settings = { ...DEFAULT_BACKOFF, ...settings };
  }

  get size(): number {
    return this.entries.size;
  }

  private live(address: string, now: number): Entry | undefined {
    const e = this.entries.get(address);
    if (e && e.waiting === 0 && now - e.last > this.settings.windowMs) {
      this.entries.delete(address);
      return undefined;
    }
    return e;
  }

  /** The delay between password checks for an address with `failures` failures. */
  delayFor(failures: number): number {
    const over = failures - this.settings.threshold;
    if (over < 0) return 0;
    return Math.min(this.settings.capMs, this.settings.baseMs * 2 ** Math.min(over, 30));
  }

  /**
   * At the start of a login: 'free' for an address in good standing, 'held' when the address is
   * in back-off and this connection now holds one of its `maxWaiting` places (give it back with
   * `done`), 'refused' when they are all taken.
   */
  admit(address: string, now: number): 'free' | 'held' | 'refused' {
    const e = this.live(address, now);
    if (!e || e.failures < this.settings.threshold) return 'free';
    if (e.waiting >= this.settings.maxWaiting) {
      e.refused++;
      return 'refused';
    }
    e.waiting++;
    return 'held';
  }

  /** A held login is over (answered, or the client went away). */
  done(address: string): void {
    const e = this.entries.get(address);
    if (e && e.waiting > 0) e.waiting--;
  }

  /**
   * How long (ms) this attempt must wait before its password is checked: 0 for an address in
   * good standing; else its turn, one delay after the previous turn given to the address.
   */
  turn(address: string, now: number): number {
    const e = this.live(address, now);
    if (!e) return 0;
    const d = this.delayFor(e.failures);
    if (d === 0) return 0;
    const at = Math.max(now, e.turn) + d;
    e.turn = at;
    return at - now;
  }

  /** Records a failure; returns the failures counted in the window and refusals since the last. */
  failure(address: string, now: number): { failures: number; refused: number } {
    let e = this.live(address, now);
    if (e) this.entries.delete(address);
    else e = { failures: 0, last: now, turn: 0, waiting: 0, refused: 0 };
    e.failures++;
    e.last = now;
    this.entries.set(address, e); // most recent last
    while (this.entries.size > this.settings.maxAddresses) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    const refused = e.refused;
    e.refused = 0;
    return { failures: e.failures, refused };
  }

  /** A successful login: the address starts afresh. */
  success(address: string): void {
    if (this.entries.size > 0) this.entries.delete(address);
  }
}

/**
 * The fields of a failed login's log line: user, database, client address and reason (never a
 * password or a proof), and for a wrong password the address's failure count and next delay.
 */
export function failedLoginFields(
  f: { kind: string; user: string; database: string; address: string; reason: string },
  backoff: LoginBackoff | null,
): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    event: 'login_failed',
    user: f.user.slice(0, 128),
    database: f.database.slice(0, 128),
    client: f.address,
    reason: f.reason.slice(0, 256),
  };
  const counted = f.kind === 'authentication' && backoff ? backoff.failure(f.address, Date.now()) : null;
  if (counted) {
    fields.failures = counted.failures;
    const delay = backoff!.delayFor(counted.failures);
    if (delay > 0) fields.next_delay_ms = delay;
    if (counted.refused > 0) fields.throttled = counted.refused;
  }
  return fields;
}
