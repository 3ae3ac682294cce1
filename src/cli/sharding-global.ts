/**
 * The global tables on group 0 (reads across groups: sharding/global-tables.ts) as the sharding
 * service keeps them: rebuilt for each catalog version and whenever a group's primary moves; while
 * a rebuild for a newer catalog is on its way (a shard move, DDL), reads that need them wait on
 * `pending` instead of being refused.
 */
import type { Logger } from '../obs/logger.js';
import { ShardHold } from '../proxy/shard-hold.js';
import type { GlobalTables } from '../proxy/shard-router.js';
import type { PgGroupSession } from '../sharding/every-group.js';
import { syncGlobalTables } from '../sharding/global-tables.js';
import type { Catalog } from '../sharding/types.js';
import type { GlobalRecord } from './sharding-proxies.js';

/** Builds tried before reads over the global tables are refused. */
const BUILD_ATTEMPTS = 4;

export interface GlobalKeeperDeps {
  readonly logger: Logger;
  readonly database: string;
  superuserPassword(): string;
  /** The cluster CA's certificate (cluster.tls on): the foreign servers verify the groups with it. */
  rootCert(): string | null;
  /** The servers' own CA (several hosts: global-tables.ts, serverCa). */
  readonly serverCa?: boolean;
  /** Where group `g`'s primary is now (null: none). */
  primary(g: string): { readonly host: string; readonly port: number } | null;
  /** The newest catalog. */
  current(): Catalog | null;
  /** Superuser sessions on every group of the catalog. */
  open(): Promise<{ sessions: PgGroupSession[]; close(): Promise<void> }>;
  /**
   * Several proxies (sharding-proxies.ts): only the one that `leads` builds, and publishes what
   * it built; the others `follow` its record.
   */
  readonly shared?: {
    leads(): boolean;
    publish(rec: GlobalRecord): Promise<void>;
    follow(version: number, rebuild: boolean): Promise<GlobalRecord | null>;
  };
}

export class GlobalTablesKeeper {
  /** As last built; null before the first build, or after one failed. */
  tables: GlobalTables | null = null;
  /** Where each group's primary was when they were built. */
  private endpoints = '';
  /** Ended when they are built for the newest catalog (or a build failed). */
  pending: ShardHold | null = null;

  constructor(private readonly d: GlobalKeeperDeps) {}

  /** The catalog changed: reads over the global tables wait for the rebuild from now on. */
  changed(): void {
    this.pending ??= new ShardHold({ colocation: -1, shards: [], group: '' });
  }

  /** A group's primary moved since they were built. */
  stale(catalog: Catalog | null): boolean {
    return catalog !== null && this.endpointsKey(catalog) !== this.endpoints;
  }

  private endpointsKey(catalog: Catalog): string {
    return catalog.groups
      .map((g) => {
        const p = this.d.primary(g);
        return `${g}=${p?.host ?? ''}:${p?.port ?? 0}`;
      })
      .join(',');
  }

  /**
   * Rebuilds them for `catalog` unless built already (`force`: DDL that kept the catalog). Never
   * throws: on failure reads across groups stay refused, and the next change tries again.
   */
  async build(catalog: Catalog, force = false): Promise<void> {
    const shared = this.d.shared;
    if (shared && !shared.leads()) return this.follow(catalog, force, shared);
    try {
      // A failed build (a group's primary just moved or joined, say) is tried again a few times
      // while reads wait, before they are refused.
      for (let attempt = 1; ; attempt++) {
        await this.buildNow(catalog, force);
        if (this.tables !== null || attempt >= BUILD_ATTEMPTS) break;
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
      const t = this.tables;
      if (shared && (t === null || t.version === catalog.version))
        await shared.publish({ version: catalog.version, tables: t === null ? null : [...t.tables] });
    } finally {
      // Built for the newest catalog, or failed: the waiting reads go on (or are refused). Built
      // for an older one: they wait for the build the newer one has queued.
      const newest = this.d.current()?.version ?? catalog.version;
      if (this.pending && (this.tables === null || this.tables.version === newest)) {
        this.pending.end();
        this.pending = null;
      }
    }
  }

  /** Another proxy builds them: its record for `catalog` (or newer) is taken; none: reads across groups are refused. */
  private async follow(
    catalog: Catalog,
    rebuild: boolean,
    shared: NonNullable<GlobalKeeperDeps['shared']>,
  ): Promise<void> {
    const rec = await shared.follow(catalog.version, rebuild);
    if (rec === null) {
      this.tables = null;
      this.d.logger.warn(
        `sharding: no proxy published the global tables for catalog version ${catalog.version}: reads across groups are refused until one does`,
      );
      this.pending?.end();
      this.pending = null;
    } else this.adopt(rec);
  }

  /** The leading proxy's record (several proxies): taken when it is for the newest catalog. */
  adopt(rec: GlobalRecord): void {
    if (this.d.shared?.leads() !== false || rec.version !== this.d.current()?.version) return;
    this.tables = rec.tables === null ? null : { version: rec.version, tables: new Set(rec.tables) };
    this.pending?.end();
    this.pending = null;
  }

  private async buildNow(catalog: Catalog, force: boolean): Promise<void> {
    const endpoints = this.endpointsKey(catalog);
    if (!force && this.tables?.version === catalog.version && this.endpoints === endpoints) return;
    const distributed = [...catalog.tables.values()].some((t) => t.kind === 'distributed');
    if (!distributed && this.endpoints === '') {
      // Nothing distributed and nothing built before: no extension, servers or role to make.
      this.tables = { version: catalog.version, tables: new Set() };
      return;
    }
    try {
      const opened = await this.d.open();
      try {
        const r = await syncGlobalTables({
          catalog,
          sessions: opened.sessions,
          endpoints: catalog.groups.map((g) => {
            const p = this.d.primary(g);
            return { group: g, host: p?.host ?? '', port: p?.port ?? 0 };
          }),
          database: this.d.database,
          superuserPassword: this.d.superuserPassword(),
          rootCert: this.d.rootCert(),
          ...(this.d.serverCa === true ? { serverCa: true } : {}),
        });
        this.tables = { version: catalog.version, tables: r.tables };
        this.endpoints = endpoints;
      } finally {
        await opened.close();
      }
    } catch (e) {
      this.tables = null;
      this.d.logger.warn(
        { err: e instanceof Error ? e.message : String(e) },
        'sharding: the global tables (reads across groups) could not be built',
      );
    }
  }
}
