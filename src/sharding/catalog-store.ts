/**
 * The sharding catalog in the HA state store (ARCHITECTURE.md decision 7): one key, `catalog`
 * under the cluster's prefix (`/pgscale/<cluster.id>/catalog` in etcd), holding encode()'s JSON.
 * It changes only by compare-and-set on the key's revision, one catalog version per change, so
 * two proxies or controllers changing it at once cannot lose each other's change: the one whose
 * comparison fails reads again and re-applies its change to the new catalog (bounded retries).
 * Every holder watches the key and moves to each newer catalog it sees; waitForVersion() lets a
 * proxy hold a statement until it has the catalog a placement change was committed in.
 *
 * src/sharding may not import src/ha, so the store is taken as CatalogBackend, the three methods
 * used here with StateStore's shapes: an EmbeddedStore or EtcdStore is passed as it is.
 *
 * A stored value that does not decode is never acted on: load() and update() reject with the
 * CatalogFormatError (routing with a guessed catalog would misplace rows; overwriting it would
 * lose the placement), and a watch event carrying one is reported to the onError listeners while
 * the last good catalog stays current.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCodes, PgscaleError } from '../errors.js';
import { decode, encode } from './catalog-codec.js';
import { CatalogFormatError, isCatalogError } from './catalog-errors.js';
import type { CatalogError } from './catalog-errors.js';
import { emptyCatalog } from './catalog.js';
import { makeCatalog } from './catalog-value.js';
import type { Catalog } from './types.js';

/** The catalog's key, relative to the cluster's key prefix. */
export const CATALOG_KEY = 'catalog';

/** What CatalogStore needs of a StateStore (src/ha/store.ts); a StateStore satisfies it. */
export interface CatalogBackend {
  get(key: string): Promise<{ readonly value: string; readonly revision: number } | null>;
  compareAndSet(key: string, expected: number, value: string): Promise<number | null>;
  watch(
    prefix: string,
    listener: (e: {
      readonly type: 'put' | 'delete';
      readonly key: string;
      readonly value: string | null;
      readonly revision: number;
    }) => void,
  ): () => void;
}

export interface CatalogStoreOptions {
  /** The groups of a catalog that does not exist yet (group 0 first). */
  readonly groups: readonly string[];
  /** The key; CATALOG_KEY when absent. */
  readonly key?: string;
  /** Compare-and-set attempts per update() before it gives up; 50 when absent. */
  readonly maxAttempts?: number;
}

/** Thrown by update() when every attempt lost its comparison to another writer. */
export class CatalogConflictError extends PgscaleError {}

interface Waiter {
  readonly version: number;
  readonly resolve: (c: Catalog) => void;
  readonly reject: (e: Error) => void;
  timer: NodeJS.Timeout | null;
}

export class CatalogStore {
  private catalog: Catalog;
  /** The newest store revision of the key this holder has seen (0: none yet). */
  private revision = 0;
  /** The revision the current catalog was stored at (0: the empty catalog, nothing stored). */
  private catalogRevision = 0;
  private readonly key: string;
  private readonly groups: readonly string[];
  private readonly maxAttempts: number;
  private readonly listeners = new Set<(c: Catalog) => void>();
  private readonly errorListeners = new Set<(e: Error) => void>();
  private readonly waiters = new Set<Waiter>();
  private stopWatch: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly backend: CatalogBackend,
    opts: CatalogStoreOptions,
  ) {
    this.key = opts.key ?? CATALOG_KEY;
    this.maxAttempts = opts.maxAttempts ?? 50;
    this.groups = [...opts.groups];
    this.catalog = emptyCatalog(this.groups);
  }

  /** The newest catalog this holder knows (an empty version-0 catalog before anything is stored). */
  get current(): Catalog {
    return this.catalog;
  }

  /**
   * Starts watching, then reads the stored catalog (in that order, so no change falls between).
   * Rejects with a CatalogFormatError when the stored value is not a valid catalog.
   */
  async load(): Promise<Catalog> {
    if (!this.stopWatch && !this.closed)
      this.stopWatch = this.backend.watch(this.key, (e) => {
        if (e.key === this.key) this.onEvent(e.type === 'put' ? e.value : null, e.revision);
      });
    const kv = await this.backend.get(this.key);
    if (kv) this.fromStore(kv);
    return this.catalog;
  }

  /**
   * Applies `fn` to the newest stored catalog and stores the result as the next version, by
   * compare-and-set; when another writer got there first, reads again and re-applies `fn` (so
   * `fn` must be pure; it may run several times). Returns the stored catalog, or `fn`'s
   * CatalogError (nothing written). When `fn` returns its argument, nothing is written; when it
   * returns a catalog that would not decode, update() rejects with the CatalogFormatError.
   */
  async update(fn: (c: Catalog) => Catalog | CatalogError): Promise<Catalog | CatalogError> {
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const kv = await this.backend.get(this.key);
      const base = kv ? this.fromStore(kv) : this.emptyBase();
      const changed = fn(base);
      if (isCatalogError(changed)) return changed;
      if (changed === base) return base;
      const next = makeCatalog(
        base.version + 1,
        changed.tables,
        changed.colocations,
        changed.groups,
        changed.nextShardId,
      );
      const text = encode(next);
      // What every holder will decode, checked before it is written: a catalog no one could
      // read (a bug in a rule) must not replace a good one.
      decodeAt(this.key, text);
      const rev = await this.backend.compareAndSet(this.key, kv?.revision ?? 0, text);
      if (rev !== null) {
        this.accept(next, rev);
        // Our own watch event may have brought the same version first: hand out one object.
        return this.catalogRevision === rev ? this.catalog : next;
      }
      // Lost to another writer: a short random pause keeps a crowd of writers from colliding again.
      await sleep(Math.random() * Math.min(50, 2 * (attempt + 1)));
    }
    throw new CatalogConflictError(
      ErrorCodes.STORE_UNAVAILABLE,
      `the sharding catalog (key ${this.key}) kept changing under ${this.maxAttempts} attempts to update it`,
    );
  }

  /** Calls `listener` with every newer catalog this holder moves to; returns the unsubscribe. */
  onChange(listener: (c: Catalog) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls `listener` when a stored value cannot be used (garbage, or the key deleted). */
  onError(listener: (e: Error) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  /**
   * Resolves with a catalog of at least `version`: at once if the current one is, else when the
   * watch brings one. At the timeout the key is read once more (a watch may have broken) before
   * rejecting with a TIMEOUT error: never resolves with an older catalog.
   */
  waitForVersion(version: number, timeoutMs: number): Promise<Catalog> {
    if (this.catalog.version >= version) return Promise.resolve(this.catalog);
    if (this.closed) return Promise.reject(closedError());
    return new Promise<Catalog>((resolve, reject) => {
      const w: Waiter = { version, resolve, reject, timer: null };
      w.timer = setTimeout(() => {
        w.timer = null;
        this.backend
          .get(this.key)
          .then((kv) => {
            if (kv) this.fromStore(kv);
          })
          .catch((e: unknown) => this.report(e instanceof Error ? e : new Error(String(e))))
          .finally(() => {
            if (!this.waiters.delete(w)) return;
            if (this.catalog.version >= version) resolve(this.catalog);
            else
              reject(
                new PgscaleError(
                  ErrorCodes.TIMEOUT,
                  `the sharding catalog did not reach version ${version} within ${timeoutMs} ms (this holder has version ${this.catalog.version})`,
                ),
              );
          });
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  /** Stops the watch; pending waits reject. */
  close(): void {
    this.closed = true;
    this.stopWatch?.();
    this.stopWatch = null;
    for (const w of this.waiters) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(closedError());
    }
    this.waiters.clear();
  }

  private onEvent(value: string | null, revision: number): void {
    if (revision <= this.revision) return;
    if (value === null) {
      this.report(
        new CatalogFormatError(
          `the sharding catalog key ${this.key} was deleted; keeping version ${this.catalog.version}`,
        ),
      );
      return;
    }
    try {
      this.accept(decodeAt(this.key, value), revision);
    } catch (e) {
      this.report(e as Error);
    }
  }

  /** Moves to `c` (stored at `revision`) when it is newer than what this holder has. */
  private accept(c: Catalog, revision: number): void {
    if (revision <= this.revision) return;
    this.revision = revision;
    if (c.version <= this.catalog.version) return;
    this.catalog = c;
    this.catalogRevision = revision;
    for (const l of this.listeners) l(c);
    for (const w of this.waiters)
      if (c.version >= w.version) {
        this.waiters.delete(w);
        if (w.timer) clearTimeout(w.timer);
        w.resolve(c);
      }
  }

  /**
   * The catalog stored at `kv`: the current object when that is where it came from (so a holder
   * hands out one object per version and lookups are built once), else decoded and accepted.
   */
  private fromStore(kv: { readonly value: string; readonly revision: number }): Catalog {
    if (kv.revision === this.catalogRevision) return this.catalog;
    const c = decodeAt(this.key, kv.value);
    this.accept(c, kv.revision);
    return this.catalogRevision === kv.revision ? this.catalog : c;
  }

  /**
   * The base when nothing is stored: empty over the configured groups at version 0 — or, when
   * the key was deleted under us, at the version this holder has, so versions never go back.
   */
  private emptyBase(): Catalog {
    const empty = emptyCatalog(this.groups);
    return this.catalog.version === 0
      ? empty
      : makeCatalog(this.catalog.version, empty.tables, empty.colocations, empty.groups, empty.nextShardId);
  }

  private report(e: Error): void {
    for (const l of this.errorListeners) l(e);
  }
}

function decodeAt(key: string, text: string): Catalog {
  try {
    return decode(text);
  } catch (e) {
    if (e instanceof CatalogFormatError)
      throw new CatalogFormatError(`${e.message} (store key ${key})`, { cause: e });
    throw e;
  }
}

function closedError(): Error {
  return new PgscaleError(ErrorCodes.INTERNAL, 'the catalog store is closed');
}
