/**
 * Sharding served by several stateless proxies (`pgscale proxy --cluster`, docs/multi-host.md):
 * every proxy runs the sharding service (src/cli/sharding-service.ts) for its own sessions — the
 * catalog from etcd, watched; routing; the Citus API calls, which change the catalog by
 * compare-and-set; statements on several groups with two-phase commit — while the duties that
 * must run once in the cluster run in one proxy at a time, the one holding `shardproxies/duty`:
 * the recovery of transactions left prepared, the global tables on group 0 (reads across
 * groups), the catalog's groups following the configuration's. The key is bound to the lease of
 * the proxy's registration (proxy-peers.ts): when that proxy dies its key goes with the lease,
 * within the TTL, and another proxy takes it at its next look (every TTL/4). A holder that
 * cannot confirm the key for TTL/2 stops acting as one before anyone else can take over.
 *
 * The holder publishes what it built of the global tables (`shardproxies/global`: the catalog
 * version and its tables) and every proxy routes reads across groups by that record; a proxy
 * whose DDL changed columns without changing the catalog asks for a rebuild
 * (`shardproxies/rebuild`) and waits for a record written after its request.
 *
 * Each proxy also writes the catalog version it routes with (`shardproxies/seen/<n>`); a proxy
 * that changed the catalog (an API call) answers its client once every other registered proxy
 * has it (or after the TTL, naming those that did not), so that the next statement through
 * another proxy is routed by the new catalog.
 */
import { performance } from 'node:perf_hooks';
import { errorMessage } from '../errors.js';
import type { LeaseId, StateStore } from '../ha/store.js';
import type { Logger } from '../obs/logger.js';
import { ShardHoldSync } from './sharding-holds.js';
import type { HoldSyncDeps } from './sharding-holds.js';

const PREFIX = 'shardproxies/';
export const SHARD_PROXY_KEYS = {
  duty: `${PREFIX}duty`,
  global: `${PREFIX}global`,
  rebuild: `${PREFIX}rebuild`,
  /** `seen/<n>`: the newest catalog version proxy n routes with (under its registration's lease). */
  seen: `${PREFIX}seen/`,
} as const;

/** What the duty holder built of the global tables: for which catalog version, which tables. */
export interface GlobalRecord {
  readonly version: number;
  /** Catalog keys of the tables that have a global table; null: the build failed. */
  readonly tables: readonly string[] | null;
}

/** What the sharding service does for the cluster-wide duties (set by ShardingService.start). */
export interface DutyHooks {
  /** This proxy took the duties (at start or on the holder's death). */
  gained(): void;
  /** Another proxy asked for the global tables to be rebuilt (the holder's side). */
  rebuild(): void;
  /** The holder published a record (every proxy's side). */
  published(rec: GlobalRecord): void;
  /** This proxy no longer holds the duties (another took them): its shard moves stop. */
  lost?(): void;
}

export class ShardingProxies {
  private holding = false;
  private confirmedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopWatch: (() => void) | null = null;
  private latest: { rec: GlobalRecord; revision: number } | null = null;
  private readonly waiters = new Set<() => void>();
  private hooks: DutyHooks | null = null;
  private readonly me: string;
  private seenWrite: Promise<void> = Promise.resolve();
  /** The proxy number in the duty key at the last look (null: none, or not read yet). */
  dutyHolder: number | null = null;

  constructor(
    private readonly store: StateStore,
    /** This proxy's number (proxy-peers.ts) and the lease of its registration. */
    private readonly proxy: {
      readonly id: number;
      lease(): LeaseId | null;
      /** The other registered proxies' numbers. */
      others(): readonly number[];
    },
    private readonly log: Logger,
    private readonly ttlMs: number,
  ) {
    this.me = JSON.stringify({ proxy: proxy.id, pid: process.pid });
  }

  /** How long a proxy waits for the holder's record of the global tables before refusing reads across groups. */
  get followMs(): number {
    return 2 * this.ttlMs + 20_000;
  }

  async start(hooks: DutyHooks): Promise<void> {
    this.hooks = hooks;
    this.stopWatch = this.store.watch(PREFIX, (e) => {
      if (e.key.endsWith(SHARD_PROXY_KEYS.rebuild) && e.type === 'put' && this.duty) hooks.rebuild();
      if (e.key.endsWith(SHARD_PROXY_KEYS.global) && e.value !== null) this.take(e.value, e.revision);
    });
    const kv = await this.store.get(SHARD_PROXY_KEYS.global);
    if (kv) this.take(kv.value, kv.revision);
    await this.look();
    this.schedule();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.stopWatch?.();
    this.stopWatch = null;
    if (this.holding) {
      // Given up now rather than at the lease's end: another proxy takes over at its next look.
      const kv = await this.store.get(SHARD_PROXY_KEYS.duty).catch(() => null);
      if (kv?.value === this.me) await this.store.compareAndDelete(kv.key, kv.revision).catch(() => false);
    }
    this.holding = false;
    for (const w of this.waiters) w();
  }

  /** This proxy runs the cluster-wide duties now (confirmed within TTL/2). */
  get duty(): boolean {
    return this.holding && performance.now() - this.confirmedAt < this.ttlMs / 2;
  }

  private schedule(): void {
    this.timer = setTimeout(
      () => {
        void this.look().finally(() => {
          if (this.timer) this.schedule();
        });
      },
      Math.min(1000, this.ttlMs / 4),
    );
    this.timer.unref();
  }

  /** Confirms the duty key is ours, or takes it when nobody holds it. */
  private async look(): Promise<void> {
    try {
      const lease = this.proxy.lease();
      const kv = await this.store.get(SHARD_PROXY_KEYS.duty);
      let mine = kv?.value === this.me;
      this.dutyHolder = kv === null ? null : ((JSON.parse(kv.value) as { proxy?: number }).proxy ?? null);
      if (kv === null && lease !== null)
        mine = (await this.store.compareAndSet(SHARD_PROXY_KEYS.duty, 0, this.me, { lease })) !== null;
      if (mine) {
        this.confirmedAt = performance.now();
        this.dutyHolder = this.proxy.id;
      }
      const gained = mine && !this.holding;
      if (this.holding && !mine) {
        this.log.warn(`proxy ${this.proxy.id}: another proxy runs the cluster-wide sharding duties now`);
        this.hooks?.lost?.();
      }
      this.holding = mine;
      if (gained) {
        this.log.info(
          `proxy ${this.proxy.id}: runs the cluster-wide sharding duties (recovery of prepared transactions, global tables)`,
        );
        this.hooks?.gained();
      }
    } catch (e) {
      this.log.debug(`proxy ${this.proxy.id}: the sharding duty key was not read: ${errorMessage(e)}`);
    }
  }

  private take(value: string, revision: number): void {
    let rec: GlobalRecord;
    try {
      rec = JSON.parse(value) as GlobalRecord;
    } catch {
      return;
    }
    if (this.latest !== null && this.latest.revision >= revision) return;
    this.latest = { rec, revision };
    this.hooks?.published(rec);
    for (const w of this.waiters) w();
  }

  /** This proxy routes with catalog `version` from now on (written in order, the newest last). */
  seen(version: number): void {
    const lease = this.proxy.lease();
    if (lease === null) return;
    this.seenWrite = this.seenWrite
      .then(() => this.store.put(`${SHARD_PROXY_KEYS.seen}${this.proxy.id}`, String(version), { lease }))
      .then(
        () => undefined,
        (e: unknown) =>
          this.log.debug(
            `proxy ${this.proxy.id}: catalog version ${version} not acknowledged: ${errorMessage(e)}`,
          ),
      );
  }

  /**
   * Waits until every other registered proxy routes with catalog `version` or newer; after the
   * TTL gives up, naming those that did not (they are routed by it once their watch brings it).
   */
  async othersHave(version: number): Promise<void> {
    const until = Date.now() + this.ttlMs;
    for (;;) {
      let behind: number[] = [...this.proxy.others()];
      try {
        const have = new Map(
          (await this.store.list(SHARD_PROXY_KEYS.seen)).map((kv) => [
            Number(kv.key.slice(kv.key.lastIndexOf('/') + 1)),
            Number(kv.value),
          ]),
        );
        behind = behind.filter((n) => (have.get(n) ?? -1) < version);
      } catch {
        // the store is not answering: wait as for a proxy that is behind
      }
      if (behind.length === 0) return;
      if (Date.now() > until || this.timer === null) {
        this.log.warn(
          `sharding: proxies ${behind.join(', ')} did not acknowledge catalog version ${version} within ${this.ttlMs} ms; they route by it once their watch brings it`,
        );
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Why this proxy does not run shard moves (another holds the duties), or null when it does. */
  movesElsewhere(): string | null {
    if (this.duty) return null;
    const holder = this.dutyHolder === null ? 'none right now' : `proxy ${this.dutyHolder}`;
    return `shard moves, rebalance and drain run in the proxy holding the cluster-wide sharding duties (${holder}): connect through it (docs/multi-host.md)`;
  }

  /** The cutover's holds and the running job at every proxy (sharding-holds.ts), with this proxy's registration. */
  holdSync(local: Pick<HoldSyncDeps, 'holds' | 'reloadCatalog' | 'readFloor' | 'idle'>): ShardHoldSync {
    return new ShardHoldSync({
      store: this.store,
      id: this.proxy.id,
      lease: () => this.proxy.lease(),
      others: () => this.proxy.others(),
      ttlMs: this.ttlMs,
      log: this.log,
      ...local,
    });
  }

  /** What the global tables' keeper (sharding-global.ts) uses: who builds, publish, follow. */
  keeperShare(): {
    leads(): boolean;
    publish(rec: GlobalRecord): Promise<void>;
    follow(version: number, rebuild: boolean): Promise<GlobalRecord | null>;
  } {
    return { leads: () => this.duty, publish: (r) => this.publish(r), follow: (v, b) => this.follow(v, b) };
  }

  /** The holder's side: what it built, for every proxy. */
  async publish(rec: GlobalRecord): Promise<void> {
    if (!this.duty) return;
    await this.store
      .put(SHARD_PROXY_KEYS.global, JSON.stringify(rec))
      .catch((e: unknown) =>
        this.log.warn(`sharding: the global tables' record was not published: ${errorMessage(e)}`),
      );
  }

  /**
   * Every other proxy's side: the holder's record for catalog `version` or newer — written after
   * a rebuild request of ours when `rebuild` (DDL kept the catalog) — or null after followMs.
   */
  async follow(version: number, rebuild: boolean): Promise<GlobalRecord | null> {
    let after = 0;
    if (rebuild)
      after = await this.store
        .put(SHARD_PROXY_KEYS.rebuild, JSON.stringify({ proxy: this.proxy.id, at: Date.now() }))
        .catch(() => 0);
    const until = Date.now() + this.followMs;
    for (;;) {
      const l = this.latest;
      if (l !== null && l.rec.version >= version && l.revision > after) return l.rec;
      const left = until - Date.now();
      if (left <= 0 || this.timer === null) return null;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, Math.min(left, 1000));
        this.waiters.add(done);
      });
    }
  }
}
