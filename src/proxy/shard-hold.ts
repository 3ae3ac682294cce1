/**
 * Per-shard holds of the proxy, for the cutover of a shard move (sharding/shard-move.ts): while
 * a shard's rows change group, new statements for it wait here — and only those: a statement
 * pinned to other shards never waits. A hold has two phases:
 *
 * - `drain`: statements of a transaction already running on the source group go on (it must be
 *   able to finish, or the cutover would wait for it forever); every other statement for the
 *   shard waits. The mover waits meanwhile until no transaction on the source holds a lock on
 *   the shard's tables.
 * - `fence`: every statement for the shard waits. The mover waits until each statement let
 *   through in `drain` has been answered (its server leg is idle), then locks the shard on the
 *   source: nothing can reach it any more.
 *
 * Released, the waiting statements are routed again with the catalog of that moment: the new
 * placement after a cutover, the old one after a failed or cancelled one. Statements that need
 * several groups (reads across groups, writes on every group, COPY) wait during any hold: they
 * touch every shard of their tables.
 */
import type { ShardRoute } from '../sharding/shard-plan.js';

/** What the proxy's sessions show a hold of the legs they let through (a ServerLeg). */
export interface HeldLeg {
  readonly idle: boolean;
  readonly group: string;
}

export interface ShardHoldSpec {
  /** The colocation whose shards move (every colocated table's shard `r` moves together). */
  readonly colocation: number;
  /** The shard ids that move (every colocated table's shard of the moving remainder). */
  readonly shards: readonly number[];
  /** The group they leave. */
  readonly group: string;
  /**
   * The group they go to: statements routed there by the new catalog wait too until the hold
   * ends (the shard is attached there only then).
   */
  readonly to?: string;
  /**
   * Every statement of the sharded database waits (several proxies: a proxy that could not
   * confirm its registration stops routing, sharding-holds.ts); `group` and `shards` are unused.
   */
  readonly all?: boolean;
}

export class ShardHold {
  phase: 'drain' | 'fence' = 'drain';
  /** Resolves when the hold ends (the waiting statements are routed again). */
  readonly released: Promise<void>;
  private release!: () => void;
  /** The legs statements were let through on in `drain` (see fence()). */
  private readonly through = new Set<HeldLeg>();
  private readonly ids: ReadonlySet<number>;
  /** Statements that waited (for the status and the tests). */
  waited = 0;
  readonly since = Date.now();

  constructor(readonly spec: ShardHoldSpec) {
    this.ids = new Set(spec.shards);
    this.released = new Promise<void>((r) => (this.release = r));
  }

  /** A route on one group touching these shards. */
  touches(route: ShardRoute): boolean {
    if (this.spec.all === true) return true;
    if (route.kind !== 'one') return false;
    if (route.group !== this.spec.group && route.group !== this.spec.to) return false;
    return route.shards.some((id) => this.ids.has(id));
  }

  /**
   * A statement of a transaction running on `leg` may go on in `drain` (the transaction started
   * on the source group, so it may hold the shard already and must be able to finish).
   */
  letsThrough(leg: HeldLeg | null, inTransaction: boolean): boolean {
    if (this.phase !== 'drain' || leg === null || !inTransaction || leg.group !== this.spec.group)
      return false;
    this.through.add(leg);
    return true;
  }

  /** A statement already sent when the hold began: fence() waits for its answer too. */
  track(leg: HeldLeg): void {
    if (!leg.idle) this.through.add(leg);
  }

  /** Enters `fence`; resolves once every statement let through (or in flight at the start) has been answered. */
  async fence(timeoutMs: number): Promise<boolean> {
    this.phase = 'fence';
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const l of this.through) if (l.idle) this.through.delete(l);
      if (this.through.size === 0) return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /** Ends the hold (idempotent). */
  end(): void {
    this.release();
  }
}

/** The holds of one proxy (usually none: one null check per statement). */
export class ShardHolds {
  private holds: ShardHold[] = [];
  /**
   * The statements in flight when a hold begins, on these groups (the proxy's sessions' busy
   * legs, the sharding host's running work): set by whoever can see them.
   */
  inFlight: (groups: readonly string[]) => HeldLeg[] = () => [];

  get active(): boolean {
    return this.holds.length > 0;
  }

  /** Starts holding statements for `spec`'s shards. */
  hold(spec: ShardHoldSpec): ShardHold {
    const h = new ShardHold(spec);
    if (spec.all === true) h.phase = 'fence';
    // Group 0 too: reads across groups run there over the global tables.
    for (const l of this.inFlight([...new Set([spec.group, '0'])])) h.track(l);
    this.holds = [...this.holds, h];
    return h;
  }

  /** Ends `h`: its statements are routed again. */
  release(h: ShardHold): void {
    this.holds = this.holds.filter((x) => x !== h);
    h.end();
  }

  /** The hold a statement on one group with this route waits for, or null. */
  forRoute(route: ShardRoute): ShardHold | null {
    for (const h of this.holds) if (h.touches(route)) return h;
    return null;
  }

  /** A hold on `group`, for a statement there whose shards are not known here. */
  anyOn(group: string): ShardHold | null {
    for (const h of this.holds)
      if (h.spec.all === true || h.spec.group === group || h.spec.to === group) return h;
    return null;
  }

  /** The hold a statement on several groups waits for (any: it touches every shard), or null. */
  any(): ShardHold | null {
    return this.holds[0] ?? null;
  }

  /** What GET /services shows. */
  status(): {
    colocation: number;
    shards: readonly number[];
    group: string;
    to?: string;
    phase: string;
    waited: number;
  }[] {
    return this.holds.map((h) => ({ ...h.spec, phase: h.phase, waited: h.waited }));
  }
}
