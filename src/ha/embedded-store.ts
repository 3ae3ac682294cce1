/**
 * The embedded StateStore, for one host: an in-process map with a store-wide revision counter,
 * kept in one JSON file (store-file.ts) that is rewritten atomically after every change; an
 * operation resolves only once its change is on disk (concurrent changes share one write). Leases
 * run on the monotonic clock (performance.now()); a timer per lease deletes its keys when it
 * ends. Lease deadlines cannot survive a restart (monotonic time starts afresh), so a reopened
 * store gives every persisted lease its full TTL again, as etcd does after a leader change: a
 * restarting controller keeps its leader lease alive with the id it reads from the key.
 * One process owns the file at a time (the controller's controller.json lock sees to that).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ErrorCodes } from '../errors.js';
import { readStoreFile, STORE_FILE_FORMAT, writeStoreFile } from './store-file.js';
import type { StoreFileState } from './store-file.js';
import { StoreError } from './store.js';
import type { KeyValue, LeaseId, PutOptions, StateStore, WatchEvent } from './store.js';

interface Lease {
  readonly id: LeaseId;
  readonly ttlMs: number;
  deadline: number;
  timer: NodeJS.Timeout | null;
  readonly keys: Set<string>;
}

interface Watcher {
  readonly prefix: string;
  readonly listener: (e: WatchEvent) => void;
  active: boolean;
}

/** Where a cluster's embedded store lives inside its data directory. */
export function embeddedStorePath(dataDir: string): string {
  return join(dataDir, 'state', 'store.json');
}

export class EmbeddedStore implements StateStore {
  readonly kind = 'embedded';
  readonly describe: string;
  private readonly keys = new Map<string, KeyValue>();
  private readonly leases = new Map<LeaseId, Lease>();
  private readonly watchers = new Set<Watcher>();
  private revision: number;
  private nextLease: number;
  private closed = false;
  /** The write in progress (or the last one), and the one queued behind it that new changes join. */
  private writing: Promise<void> = Promise.resolve();
  private queued: Promise<void> | null = null;

  private constructor(
    private readonly file: string,
    state: StoreFileState,
  ) {
    this.describe = `embedded store ${file}`;
    this.revision = state.revision;
    this.nextLease = state.next_lease;
    const now = performance.now();
    for (const { id, ttl_ms: ttlMs } of state.leases) {
      this.leases.set(id, { id, ttlMs, deadline: now + ttlMs, timer: null, keys: new Set() });
    }
    for (const kv of state.keys) {
      this.keys.set(kv.key, Object.freeze({ ...kv }));
      if (kv.lease !== null) this.leases.get(kv.lease)?.keys.add(kv.key);
    }
    for (const lease of this.leases.values()) this.schedule(lease);
  }

  /**
   * Opens the store kept in `file` (created on the first write, with its directory). A file that
   * cannot be read or parsed rejects with a StoreError naming it.
   */
  static async open(file: string): Promise<EmbeddedStore> {
    return new EmbeddedStore(file, await readStoreFile(file));
  }

  get(key: string): Promise<KeyValue | null> {
    return this.op(() => this.keys.get(checkKey(key)) ?? null);
  }

  list(prefix: string): Promise<KeyValue[]> {
    return this.op(() =>
      [...this.keys.values()].filter((kv) => kv.key.startsWith(prefix)).sort((a, b) => compare(a.key, b.key)),
    );
  }

  put(key: string, value: string, opts?: PutOptions): Promise<number> {
    return this.change(() => this.write(checkKey(key), value, opts?.lease ?? null));
  }

  compareAndSet(key: string, expected: number, value: string, opts?: PutOptions): Promise<number | null> {
    return this.change(() => {
      const current = this.keys.get(checkKey(key))?.revision ?? 0;
      if (current !== expected) return null;
      return this.write(key, value, opts?.lease ?? null);
    });
  }

  compareAndDelete(key: string, expected: number): Promise<boolean> {
    return this.change(() => {
      const kv = this.keys.get(checkKey(key));
      if (!kv || kv.revision !== expected) return false;
      this.revision++;
      this.remove(kv);
      this.emit([{ type: 'delete', key, value: null, revision: this.revision }]);
      return true;
    });
  }

  grantLease(ttlMs: number): Promise<LeaseId> {
    return this.change(() => {
      if (!Number.isFinite(ttlMs) || ttlMs <= 0)
        throw new StoreError(
          ErrorCodes.INTERNAL,
          `a lease TTL must be a positive number of ms, not ${ttlMs}`,
        );
      const id = String(this.nextLease++);
      const lease: Lease = { id, ttlMs, deadline: performance.now() + ttlMs, timer: null, keys: new Set() };
      this.leases.set(id, lease);
      this.schedule(lease);
      return id;
    });
  }

  keepAlive(id: LeaseId): Promise<boolean> {
    // A deadline is not persisted, so extending one needs no write.
    return this.op(() => {
      const lease = this.leases.get(id);
      if (!lease) return false;
      lease.deadline = performance.now() + lease.ttlMs;
      this.schedule(lease);
      return true;
    });
  }

  revokeLease(id: LeaseId): Promise<void> {
    return this.change(() => {
      const lease = this.leases.get(id);
      if (lease) this.end(lease);
    });
  }

  watch(prefix: string, listener: (e: WatchEvent) => void): () => void {
    const w: Watcher = { prefix, listener, active: !this.closed };
    if (w.active) this.watchers.add(w);
    return () => {
      w.active = false;
      this.watchers.delete(w);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const lease of this.leases.values()) if (lease.timer) clearTimeout(lease.timer);
    for (const w of this.watchers) w.active = false;
    this.watchers.clear();
    // Changes already made (a lease expiry, say) still reach the disk.
    await this.writing.catch(() => undefined);
    await this.queued?.catch(() => undefined);
  }

  /** A read, or a change that needs no write. */
  private op<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(closedError(this.file));
    return new Promise<T>((resolve) => resolve(fn()));
  }

  /** A change: applied in memory at once (so changes keep call order), resolved once on disk. */
  private async change<T>(fn: () => T): Promise<T> {
    if (this.closed) throw closedError(this.file);
    const before = this.snapshotCounters();
    const result = fn();
    if (this.snapshotCounters() !== before) await this.persist();
    return result;
  }

  /** Revision and lease counter: every persisted change moves one of them. */
  private snapshotCounters(): string {
    return `${this.revision}/${this.nextLease}/${this.leases.size}`;
  }

  private write(key: string, value: string, leaseId: LeaseId | null): number {
    const lease = leaseId === null ? null : this.leases.get(leaseId);
    if (lease === undefined)
      throw new StoreError(ErrorCodes.STORE_LEASE_NOT_FOUND, `lease ${leaseId} has ended or never existed`);
    const old = this.keys.get(key);
    if (old?.lease != null) this.leases.get(old.lease)?.keys.delete(key);
    this.revision++;
    this.keys.set(key, Object.freeze({ key, value, revision: this.revision, lease: leaseId }));
    lease?.keys.add(key);
    this.emit([{ type: 'put', key, value, revision: this.revision }]);
    return this.revision;
  }

  private remove(kv: KeyValue): void {
    this.keys.delete(kv.key);
    if (kv.lease !== null) this.leases.get(kv.lease)?.keys.delete(kv.key);
  }

  /** Ends a lease: its keys go in one revision (as in etcd), with one delete event each. */
  private end(lease: Lease): void {
    if (lease.timer) clearTimeout(lease.timer);
    this.leases.delete(lease.id);
    if (lease.keys.size === 0) return;
    this.revision++;
    const events: WatchEvent[] = [];
    for (const key of [...lease.keys].sort(compare)) {
      this.keys.delete(key);
      events.push({ type: 'delete', key, value: null, revision: this.revision });
    }
    this.emit(events);
  }

  private schedule(lease: Lease): void {
    if (lease.timer) clearTimeout(lease.timer);
    if (this.closed) return;
    const delay = Math.max(0, lease.deadline - performance.now());
    // Not unref'd: a caller waiting only for an expiry (through a watch) must not see the
    // process exit first. close() clears the timers.
    lease.timer = setTimeout(() => this.expire(lease), Math.ceil(delay));
  }

  private expire(lease: Lease): void {
    lease.timer = null;
    if (this.closed || this.leases.get(lease.id) !== lease) return;
    // Timers may fire a little early; a lease is never ended before its deadline.
    if (performance.now() < lease.deadline) return this.schedule(lease);
    this.end(lease);
    // No caller waits for this write; a failure here is retried by the next change's write.
    this.persist().catch(() => undefined);
  }

  /** Listeners run in microtasks, in revision order, and only while their watch is active. */
  private emit(events: WatchEvent[]): void {
    for (const w of this.watchers) {
      for (const e of events) {
        if (!e.key.startsWith(w.prefix)) continue;
        queueMicrotask(() => {
          if (w.active) w.listener(e);
        });
      }
    }
  }

  /**
   * Resolves once the current state is on disk. Writes never overlap: a change made while a
   * write is in progress joins the one queued behind it, which snapshots the state when it starts.
   */
  private persist(): Promise<void> {
    if (this.queued) return this.queued;
    const next = this.writing
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return writeStoreFile(this.file, this.state());
      });
    this.queued = next;
    this.writing = next;
    return next;
  }

  private state(): StoreFileState {
    return {
      format: STORE_FILE_FORMAT,
      version: 1,
      revision: this.revision,
      next_lease: this.nextLease,
      leases: [...this.leases.values()].map((l) => ({ id: l.id, ttl_ms: l.ttlMs })),
      keys: [...this.keys.values()].map((kv) => ({ ...kv })),
    };
  }
}

function checkKey(key: string): string {
  if (key === '') throw new StoreError(ErrorCodes.INTERNAL, 'a store key cannot be empty');
  return key;
}

/** Byte order of the UTF-8 encodings, the order etcd sorts keys in. */
function compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function closedError(file: string): StoreError {
  return new StoreError(ErrorCodes.STORE_UNAVAILABLE, `the embedded store ${file} is closed`);
}
