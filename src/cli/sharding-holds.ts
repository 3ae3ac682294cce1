/**
 * A shard move's cutover held at every stateless proxy (several hosts, docs/multi-host.md
 * "Sharding"). Moves run in the proxy holding the cluster-wide duties (sharding-proxies.ts); its
 * hold (proxy/shard-hold.ts) must stop the shard's statements at every proxy before the source is
 * locked, or another proxy would go on writing to the shard's old place. In etcd:
 *
 * - `shardproxies/hold/<name>` (under the duty holder's registration lease): the shards held, and
 *   the phase — `drain`, then `fence`, then `released`. Every proxy watches the prefix (and lists
 *   it every TTL/4, in case a watch missed an event): on `drain` it holds the shards as the duty
 *   holder does (new statements wait; a transaction already on the source goes on) and
 *   acknowledges; on `fence` it waits until every statement it let through has been answered and
 *   acknowledges that (or that it could not, within the time the record gives).
 * - `shardproxies/held/<name>/<n>` (under proxy n's lease): proxy n's acknowledgement.
 * - The duty holder locks the source only once every proxy registered within the last TTL/2 + 2 s
 *   acknowledged `fence`; else the cutover is tried again later (the move's Retry).
 * - Released (`released`, or the key gone: the duty holder died and its lease ended), a proxy reads
 *   the catalog from etcd again before it lets the held statements go, so they are routed by the
 *   placement the cutover decided; with the shard's arrival on the target (its WAL position: reads
 *   on the target's replicas wait for it, the read floor).
 * - A proxy that has not seen its own registration (`proxies/<n>`) for TTL/2 holds every sharded
 *   statement until it sees it again. Its registration ends at the earliest TTL after it was last
 *   renewed, so once the duty holder has not seen it for TTL/2 (+ 2 s for the list's age and
 *   clocks), that proxy routes nothing: it is not waited for.
 *
 * While a job runs, `shardproxies/job` (under the duty holder's lease) tells every proxy to refuse
 * catalog changes and DDL on catalog tables (sharding-service.ts, movingRefusal); each proxy
 * acknowledges in `shardproxies/jobseen/<n>` once the statements of that kind it was running have
 * ended, and the job waits for those acknowledgements (for the TTL at most) before its first move.
 */
import { performance } from 'node:perf_hooks';
import { errorMessage } from '../errors.js';
import type { LeaseId, StateStore } from '../ha/store.js';
import type { Logger } from '../obs/logger.js';
import type { ShardHold, ShardHolds } from '../proxy/shard-hold.js';
import type { MoveHold, MoveHolds } from '../sharding/shard-move-parts.js';

const PREFIX = 'shardproxies/';
export const HOLD_KEYS = {
  hold: `${PREFIX}hold/`,
  held: `${PREFIX}held/`,
  job: `${PREFIX}job`,
  jobSeen: `${PREFIX}jobseen/`,
} as const;

/** The registrations of the proxies (proxy-peers.ts). */
const PEERS = 'proxies/';
/** Added to TTL/2 before a proxy no longer listed is taken to have stopped routing. */
const MARGIN_MS = 2000;

interface HoldSpec {
  readonly colocation: number;
  readonly shards: readonly number[];
  readonly group: string;
  readonly to: string;
}

interface HoldRecord {
  readonly spec: HoldSpec;
  /** The duty holder's proxy number. */
  readonly by: number;
  readonly phase: 'drain' | 'fence' | 'released';
  /** How long the fence may wait for statements let through (ms). */
  readonly timeoutMs?: number;
  /** The shard's arrival on the target (released after a cutover). */
  readonly arrived?: { readonly group: string; readonly lsn: string };
}

export interface JobNote {
  readonly id: string;
  readonly kind: string;
  readonly by: number;
}

export interface HoldSyncDeps {
  readonly store: StateStore;
  readonly id: number;
  lease(): LeaseId | null;
  /** The other registered proxies' numbers (refreshed every second or so). */
  others(): readonly number[];
  readonly holds: ShardHolds;
  readonly ttlMs: number;
  readonly log: Logger;
  /** Reads the catalog from the store again (before held statements are routed again). */
  reloadCatalog(): Promise<void>;
  readFloor(group: string, lsn: string): void;
  /** Resolves once the catalog changes and DDL this proxy was running have ended. */
  idle(): Promise<void>;
}

/** The duty holder's hold: its own (local) and the record every proxy follows. */
export class ClusterHold implements MoveHold {
  arrived: { group: string; lsn: string } | null = null;
  revision: Promise<number | null>;

  constructor(
    readonly local: ShardHold,
    readonly name: string,
    readonly spec: HoldSpec,
    first: Promise<number | null>,
  ) {
    this.revision = first;
  }

  get released(): Promise<void> {
    return this.local.released;
  }

  /** Set by ShardHoldSync.hold(). */
  fence!: (timeoutMs: number) => Promise<boolean>;
}

export class ShardHoldSync implements MoveHolds<ClusterHold> {
  private seq = 0;
  /** Other proxies' holds this proxy keeps, by record name. */
  private readonly remote = new Map<string, { hold: ShardHold; phase: string; chain: Promise<void> }>();
  private job: JobNote | null = null;
  private readonly lastSeen = new Map<number, number>();
  private readonly startedAt = performance.now();
  private confirmedAt = performance.now();
  private blackout: ShardHold | null = null;
  private stopWatch: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly mine = new Set<ClusterHold>();

  constructor(private readonly d: HoldSyncDeps) {}

  /** How long a proxy no longer listed is still waited for. */
  private get windowMs(): number {
    return this.d.ttlMs / 2 + MARGIN_MS;
  }

  /** A move's job of another proxy runs (DDL and catalog changes wait). */
  get remoteJob(): JobNote | null {
    return this.job !== null && this.job.by !== this.d.id ? this.job : null;
  }

  async start(): Promise<void> {
    this.stopWatch = this.d.store.watch(PREFIX, (e) => {
      if (e.key.includes(HOLD_KEYS.hold)) {
        const name = e.key.slice(e.key.indexOf(HOLD_KEYS.hold) + HOLD_KEYS.hold.length);
        this.onHold(name, e.value);
      } else if (e.key.endsWith(HOLD_KEYS.job)) this.onJob(e.value);
    });
    await this.tick();
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.stopWatch?.();
    this.stopWatch = null;
    for (const r of this.remote.values()) this.d.holds.release(r.hold);
    this.remote.clear();
    if (this.blackout) this.d.holds.release(this.blackout);
    this.blackout = null;
  }

  private schedule(): void {
    this.timer = setTimeout(
      () => {
        void this.tick().finally(() => {
          if (this.timer) this.schedule();
        });
      },
      Math.min(1000, this.d.ttlMs / 4),
    );
    this.timer.unref();
  }

  /** Own registration confirmed (or not: every statement held), the others listed, records read again. */
  private async tick(): Promise<void> {
    const now = performance.now();
    for (const n of this.d.others()) this.lastSeen.set(n, now);
    try {
      const sent = performance.now();
      const me = await this.d.store.get(`${PEERS}${this.d.id}`);
      if (me !== null) this.confirmedAt = sent;
      const holds = await this.d.store.list(HOLD_KEYS.hold);
      const names = new Set<string>();
      for (const kv of holds) {
        const name = kv.key.slice(kv.key.indexOf(HOLD_KEYS.hold) + HOLD_KEYS.hold.length);
        names.add(name);
        this.onHold(name, kv.value);
      }
      for (const name of this.remote.keys()) if (!names.has(name)) this.onHold(name, null);
      const job = await this.d.store.get(HOLD_KEYS.job);
      if ((job?.value ?? null) !== (this.job === null ? null : JSON.stringify(this.job)))
        this.onJob(job?.value ?? null);
    } catch (e) {
      this.d.log.debug(`proxy ${this.d.id}: the shard holds were not read: ${errorMessage(e)}`);
    }
    const lapsed = performance.now() - this.confirmedAt > this.d.ttlMs / 2;
    if (lapsed && this.blackout === null) {
      this.d.log.error(
        `proxy ${this.d.id}: its registration was not confirmed for ${this.d.ttlMs / 2} ms: statements of the sharded database wait until it is (a shard move may be cutting over without this proxy)`,
      );
      this.blackout = this.d.holds.hold({ colocation: -1, shards: [], group: '*', all: true });
    } else if (!lapsed && this.blackout !== null) {
      this.d.log.info(`proxy ${this.d.id}: registration confirmed again; sharded statements go on`);
      this.d.holds.release(this.blackout);
      this.blackout = null;
    }
  }

  // ------------------------------------------------------------------ every proxy's side

  private onHold(name: string, value: string | null): void {
    let rec: HoldRecord | null = null;
    try {
      rec = value === null ? null : (JSON.parse(value) as HoldRecord);
    } catch {
      return;
    }
    if (rec !== null && rec.by === this.d.id) return;
    let r = this.remote.get(name);
    if (r === undefined) {
      if (rec === null || rec.phase === 'released') return;
      r = {
        hold: this.d.holds.hold({ ...rec.spec }),
        phase: '',
        chain: Promise.resolve(),
      };
      this.remote.set(name, r);
      this.d.log.info(
        `proxy ${this.d.id}: holds shards ${rec.spec.shards.join(', ')} (group ${rec.spec.group} to ${rec.spec.to}) for proxy ${rec.by}'s cutover (hold ${name})`,
      );
    }
    const phase = rec === null ? 'released' : rec.phase;
    if (r.phase === phase || r.phase === 'released') return;
    r.phase = phase;
    const held = r;
    const timeoutMs = rec?.timeoutMs ?? 3000;
    const arrived = rec?.arrived;
    held.chain = held.chain.then(async () => {
      if (phase === 'drain') await this.ack(name, 'drain');
      else if (phase === 'fence') await this.ack(name, (await held.hold.fence(timeoutMs)) ? 'fence' : 'late');
      else {
        // Routed again by the catalog the cutover left (read from etcd, not the watch's copy).
        await this.d
          .reloadCatalog()
          .catch((e: unknown) =>
            this.d.log.warn(`sharding: the catalog was not read again after a hold: ${errorMessage(e)}`),
          );
        if (arrived) this.d.readFloor(arrived.group, arrived.lsn);
        this.remote.delete(name);
        this.d.holds.release(held.hold);
        this.d.log.info(
          `proxy ${this.d.id}: hold ${name} released (${rec === null ? 'its record is gone' : 'cutover over'}); ${held.hold.waited} statements waited`,
        );
        if (rec !== null) await this.ack(name, 'released');
      }
    });
  }

  private async ack(name: string, what: string): Promise<void> {
    const lease = this.d.lease();
    if (lease === null) return;
    await this.d.store
      .put(`${HOLD_KEYS.held}${name}/${this.d.id}`, what, { lease })
      .catch((e: unknown) =>
        this.d.log.warn(`proxy ${this.d.id}: hold ${name} not acknowledged: ${errorMessage(e)}`),
      );
  }

  private onJob(value: string | null): void {
    let job: JobNote | null = null;
    try {
      job = value === null ? null : (JSON.parse(value) as JobNote);
    } catch {
      job = null;
    }
    this.job = job;
    if (job === null || job.by === this.d.id) return;
    const lease = this.d.lease();
    void this.d
      .idle()
      .then(() =>
        lease === null ? undefined : this.d.store.put(`${HOLD_KEYS.jobSeen}${this.d.id}`, job.id, { lease }),
      )
      .catch(() => undefined);
  }

  // ------------------------------------------------------------------ the duty holder's side

  /** The proxies a hold or a job waits for: listed within the window (after it, they route nothing). */
  private required(): number[] {
    const now = performance.now();
    return [...this.lastSeen].filter(([, t]) => now - t < this.windowMs).map(([n]) => n);
  }

  hold(spec: HoldSpec): ClusterHold {
    const local = this.d.holds.hold(spec);
    const name = `${this.d.id}-${process.pid}-${Date.now().toString(36)}-${++this.seq}`;
    const h = new ClusterHold(local, name, spec, this.write(name, { spec, by: this.d.id, phase: 'drain' }));
    h.fence = (timeoutMs) => this.fence(h, timeoutMs);
    this.mine.add(h);
    return h;
  }

  /** What GET /sharding/moves shows: this proxy's holds. */
  status(): unknown {
    return this.d.holds.status();
  }

  /** The duty holder's shard arrived on the target: told to every proxy at the release. */
  noteArrival(group: string, lsn: string): void {
    for (const h of this.mine) h.arrived = { group, lsn };
  }

  private write(name: string, rec: HoldRecord): Promise<number | null> {
    const lease = this.d.lease();
    if (lease === null) return Promise.resolve(null);
    return this.d.store
      .put(`${HOLD_KEYS.hold}${name}`, JSON.stringify(rec), { lease })
      .catch((e: unknown) => {
        this.d.log.warn(`sharding: hold ${name} not written: ${errorMessage(e)}`);
        return null;
      });
  }

  /** Every proxy in `fence` with its statements let through answered (false: not within the time). */
  private async fence(h: ClusterHold, timeoutMs: number): Promise<boolean> {
    // A proxy that lapsed just before this proxy started may still route: wait out the window.
    const young = this.windowMs - (performance.now() - this.startedAt);
    if (young > 0) await new Promise((r) => setTimeout(r, young));
    if ((await h.revision) === null) return false;
    h.revision = this.write(h.name, { spec: h.spec, by: this.d.id, phase: 'fence', timeoutMs });
    if ((await h.revision) === null) return false;
    const [mine, theirs] = await Promise.all([
      h.local.fence(timeoutMs),
      this.acked(`${HOLD_KEYS.held}${h.name}/`, 'fence', timeoutMs + 1000),
    ]);
    return mine && theirs;
  }

  /** Every required proxy wrote `want` under `prefix` within `ms`. */
  private async acked(prefix: string, want: string, ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    for (;;) {
      let missing: number[] = this.required();
      try {
        const have = new Map(
          (await this.d.store.list(prefix)).map((kv) => [
            Number(kv.key.slice(kv.key.lastIndexOf('/') + 1)),
            kv.value,
          ]),
        );
        if ([...have.values()].some((v) => v === 'late')) return false;
        missing = missing.filter((n) => have.get(n) !== want);
      } catch {
        // the store is not answering: as a proxy that did not acknowledge
      }
      if (missing.length === 0) return true;
      if (Date.now() > until) {
        this.d.log.warn(
          `sharding: proxies ${missing.join(', ')} did not acknowledge ${prefix} within ${ms} ms`,
        );
        return false;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  release(h: ClusterHold): void {
    this.mine.delete(h);
    this.d.holds.release(h.local);
    void (async () => {
      if ((await h.revision) === null) return;
      const rev = await this.write(h.name, {
        spec: h.spec,
        by: this.d.id,
        phase: 'released',
        ...(h.arrived ? { arrived: h.arrived } : {}),
      });
      // Removed once every proxy has let its statements go (or after the TTL: then by the lease).
      await this.acked(`${HOLD_KEYS.held}${h.name}/`, 'released', this.d.ttlMs).catch(() => false);
      if (rev !== null)
        await this.d.store.compareAndDelete(`${HOLD_KEYS.hold}${h.name}`, rev).catch(() => false);
      for (const kv of await this.d.store.list(`${HOLD_KEYS.held}${h.name}/`).catch(() => []))
        await this.d.store.compareAndDelete(kv.key, kv.revision).catch(() => false);
    })();
  }

  /** A job starts: every proxy refuses DDL and catalog changes, once those it was running have ended. */
  async jobStarted(id: string, kind: string): Promise<void> {
    const lease = this.d.lease();
    if (lease === null) throw new Error('this proxy has no registration lease');
    const note: JobNote = { id, kind, by: this.d.id };
    await this.d.store.put(HOLD_KEYS.job, JSON.stringify(note), { lease });
    this.job = note;
    if (!(await this.acked(HOLD_KEYS.jobSeen, id, this.d.ttlMs)))
      this.d.log.warn(`sharding: ${kind} job ${id} starts without every proxy's acknowledgement`);
  }

  async jobEnded(): Promise<void> {
    this.job = null;
    const kv = await this.d.store.get(HOLD_KEYS.job).catch(() => null);
    if (kv) await this.d.store.compareAndDelete(kv.key, kv.revision).catch(() => false);
  }
}
