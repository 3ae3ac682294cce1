/**
 * The StateStore: what high availability keeps outside any one PostgreSQL node — the leader
 * lease of each group, the epoch of its primary, the members' reports, the event history. Two
 * implementations sit behind this one contract (and one contract test suite): an embedded store
 * for one host, durable across a controller restart, and etcd v3 for several hosts. pgscale never
 * implements consensus itself: with several hosts the store is etcd.
 *
 * Semantics follow etcd v3: every change gets a new store-wide revision; a key records the
 * revision of its last change; compare-and-set compares that revision (0 = the key is absent);
 * a key written with a lease disappears when the lease expires or is revoked. Lease lifetimes run
 * on monotonic clocks. Every operation either completes or rejects with a StoreError
 * (STORE_UNAVAILABLE) within the store's operation timeout; none hangs. After such a rejection
 * a change may or may not have been applied (as with any timeout): re-read before retrying.
 */
import { PgscaleError } from '../errors.js';

export type LeaseId = string;

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** Store revision of the key's last change (> 0). */
  readonly revision: number;
  /** The lease the key is attached to, or null. */
  readonly lease: LeaseId | null;
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** New value on put; null on delete (including a lease expiry). */
  readonly value: string | null;
  readonly revision: number;
}

export interface PutOptions {
  /**
   * Attach the key to this lease: it is deleted when the lease ends. A lease that has already
   * ended makes the write reject with STORE_LEASE_NOT_FOUND (nothing is written). A later put
   * without this option detaches the key.
   */
  readonly lease?: LeaseId;
}

export interface StateStore {
  readonly kind: 'embedded' | 'etcd';
  /** Human description for logs and status (no credentials). */
  readonly describe: string;
  get(key: string): Promise<KeyValue | null>;
  /** Every key starting with `prefix`, sorted by key. */
  list(prefix: string): Promise<KeyValue[]>;
  /** Unconditional write; returns the new revision. */
  put(key: string, value: string, opts?: PutOptions): Promise<number>;
  /**
   * Writes `value` only if the key's revision is `expected` (0: only if the key is absent).
   * Returns the new revision, or null when the comparison failed (nothing written).
   */
  compareAndSet(key: string, expected: number, value: string, opts?: PutOptions): Promise<number | null>;
  /** Deletes the key only if its revision is `expected`; false when it was not (or it is absent). */
  compareAndDelete(key: string, expected: number): Promise<boolean>;
  /** A new lease that ends `ttlMs` from now unless kept alive. */
  grantLease(ttlMs: number): Promise<LeaseId>;
  /** Extends the lease by its TTL; false when it has already ended (its keys are gone). */
  keepAlive(lease: LeaseId): Promise<boolean>;
  /** Ends the lease now, deleting its keys; an unknown or ended lease is not an error. */
  revokeLease(lease: LeaseId): Promise<void>;
  /**
   * Calls `listener` for every change under `prefix` made after the call (in revision order).
   * Returns a function that stops the watch. A broken watch is re-established; callers that need
   * certainty re-read with list() (the decide loop does every cycle).
   */
  watch(prefix: string, listener: (e: WatchEvent) => void): () => void;
  /** Releases connections and timers; operations afterwards reject. */
  close(): Promise<void>;
}

export class StoreError extends PgscaleError {}
