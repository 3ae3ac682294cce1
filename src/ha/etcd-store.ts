/**
 * The etcd StateStore, for several hosts: etcd v3 through its JSON gateway (etcd-gateway.ts),
 * every key under one prefix per cluster (`/pgscale/<cluster>/`; the StateStore's keys are
 * relative to it). The contract maps onto etcd directly: a key's revision is its mod_revision,
 * compare-and-set is a txn comparing it (create_revision = 0 for "absent"), leases are etcd
 * leases (whole seconds, rounded up; etcd raises a TTL below its minimum, 2 s with default
 * timings, to that minimum). Every failure to reach etcd is a StoreError STORE_UNAVAILABLE
 * naming the endpoints, within the operation timeout.
 */
import { ErrorCodes, errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { EtcdGateway, EtcdReplyError } from './etcd-gateway.js';
import type { CallOptions } from './etcd-gateway.js';
import type { RawEvent } from './etcd-watch.js';
import { startWatch } from './etcd-watch.js';
import { StoreError } from './store.js';
import type { KeyValue, LeaseId, PutOptions, StateStore, WatchEvent } from './store.js';

export interface EtcdStoreOptions {
  /** Client URLs of the etcd members, e.g. `http://10.0.0.1:2379` (no credentials in them). */
  readonly endpoints: readonly string[];
  /** Prefix of this cluster's keys, e.g. etcdPrefix('main') = `/pgscale/main/`. */
  readonly prefix: string;
  /** Deadline of one operation, across all endpoints, in ms (default 1000). */
  readonly timeoutMs?: number;
  /** etcd user and password (etcd's own authentication); omit both when it is off. */
  readonly username?: string;
  readonly password?: string;
  /** Where watch breaks and recoveries are logged, and listener errors. */
  readonly logger?: Logger;
}

export const DEFAULT_ETCD_TIMEOUT_MS = 1000;

/** The key prefix of a cluster's state in a shared etcd. */
export function etcdPrefix(cluster: string): string {
  return `/pgscale/${cluster}/`;
}

interface RawKv {
  readonly key: string;
  readonly value?: string;
  readonly mod_revision: string;
  readonly lease?: string;
}
interface Header {
  readonly header?: { readonly revision?: string };
}

const RETRYABLE: CallOptions = { retryable: true };
/** A txn must not run twice: the second run would see the first one's write. */
const ONCE: CallOptions = { retryable: false };

export class EtcdStore implements StateStore {
  readonly kind = 'etcd';
  readonly describe: string;
  private readonly gateway: EtcdGateway;
  private readonly prefix: string;
  private readonly logger: Logger | null;
  /** The highest store revision any reply showed: watches start after it. */
  private seen = 0;
  private closed = false;
  private readonly watches = new Set<() => void>();

  private constructor(opts: EtcdStoreOptions) {
    if (opts.endpoints.length === 0)
      throw new StoreError(ErrorCodes.CONFIG_INVALID, 'the etcd store needs at least one endpoint');
    if (opts.prefix === '')
      throw new StoreError(ErrorCodes.CONFIG_INVALID, 'the etcd key prefix cannot be empty');
    if ((opts.username === undefined) !== (opts.password === undefined))
      throw new StoreError(
        ErrorCodes.CONFIG_INVALID,
        'etcd authentication needs both a username and a password',
      );
    const timeoutMs = opts.timeoutMs ?? DEFAULT_ETCD_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
      throw new StoreError(ErrorCodes.CONFIG_INVALID, `the etcd timeout must be a positive number of ms`);
    const endpoints = opts.endpoints.map(normalizeEndpoint);
    const auth =
      opts.username !== undefined && opts.password !== undefined
        ? { username: opts.username, password: opts.password }
        : null;
    this.gateway = new EtcdGateway(endpoints, timeoutMs, auth);
    this.prefix = opts.prefix;
    this.logger = opts.logger ?? null;
    this.describe = `etcd ${endpoints.join(',')} (prefix ${opts.prefix}${auth ? `, user ${auth.username}` : ''})`;
  }

  /**
   * Checks the options and reaches etcd once (authenticating if asked), so that a wrong
   * endpoint or password is reported at start-up; rejects with a StoreError otherwise.
   */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const store = new EtcdStore(opts);
    await store.range({ key: store.full(''), keys_only: true, limit: '1' });
    return store;
  }

  async get(key: string): Promise<KeyValue | null> {
    const kvs = await this.range({ key: this.full(checkKey(key)) });
    const kv = kvs[0];
    return kv ? this.toKeyValue(kv) : null;
  }

  async list(prefix: string): Promise<KeyValue[]> {
    const start = this.full(prefix);
    // etcd returns a range in key (byte) order.
    const kvs = await this.range({ key: start, range_end: rangeEnd(start) });
    return kvs.map((kv) => this.toKeyValue(kv));
  }

  async put(key: string, value: string, opts?: PutOptions): Promise<number> {
    const reply = await this.call<Header>(
      '/v3/kv/put',
      { key: this.full(checkKey(key)), value: b64(value), lease: opts?.lease },
      // Writing the same value twice is harmless.
      RETRYABLE,
    );
    return this.revisionOf(reply);
  }

  async compareAndSet(
    key: string,
    expected: number,
    value: string,
    opts?: PutOptions,
  ): Promise<number | null> {
    const full = this.full(checkKey(key));
    const compare =
      expected === 0
        ? { key: full, target: 'CREATE', result: 'EQUAL', create_revision: '0' }
        : { key: full, target: 'MOD', result: 'EQUAL', mod_revision: String(expected) };
    const reply = await this.call<Header & { succeeded?: boolean }>(
      '/v3/kv/txn',
      {
        compare: [compare],
        success: [{ request_put: { key: full, value: b64(value), lease: opts?.lease } }],
      },
      ONCE,
    );
    return reply.succeeded ? this.revisionOf(reply) : null;
  }

  async compareAndDelete(key: string, expected: number): Promise<boolean> {
    const full = this.full(checkKey(key));
    // Revision 0 would match an absent key in etcd; "delete the key at revision 0" deletes nothing.
    if (expected <= 0) return this.guard(() => false);
    const reply = await this.call<Header & { succeeded?: boolean }>(
      '/v3/kv/txn',
      {
        compare: [{ key: full, target: 'MOD', result: 'EQUAL', mod_revision: String(expected) }],
        success: [{ request_delete_range: { key: full } }],
      },
      ONCE,
    );
    return reply.succeeded === true;
  }

  async grantLease(ttlMs: number): Promise<LeaseId> {
    if (!Number.isFinite(ttlMs) || ttlMs <= 0)
      throw new StoreError(ErrorCodes.INTERNAL, `a lease TTL must be a positive number of ms, not ${ttlMs}`);
    // A retried grant at worst leaves an unused lease behind, which expires by itself.
    const reply = await this.call<Header & { ID?: string }>(
      '/v3/lease/grant',
      { TTL: String(Math.ceil(ttlMs / 1000)) },
      RETRYABLE,
    );
    if (!reply.ID)
      throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `${this.describe}: no lease id in the reply`);
    return reply.ID;
  }

  async keepAlive(lease: LeaseId): Promise<boolean> {
    // etcd answers an ended lease with TTL 0 (the field is then left out).
    const reply = await this.call<Header & { TTL?: string }>('/v3/lease/keepalive', { ID: lease }, RETRYABLE);
    return Number(reply.TTL ?? 0) > 0;
  }

  async revokeLease(lease: LeaseId): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: lease }, RETRYABLE);
    } catch (e) {
      if (!(e instanceof StoreError && e.code === ErrorCodes.STORE_LEASE_NOT_FOUND)) throw e;
    }
  }

  watch(prefix: string, listener: (e: WatchEvent) => void): () => void {
    if (this.closed) return () => undefined;
    const start = this.full(prefix);
    let active = true;
    const stopStream = startWatch(this.gateway, {
      key: start,
      rangeEnd: rangeEnd(start),
      // Every change after the last revision this store saw, which includes all after this call.
      startRevision: this.seen + 1,
      name: `etcd watch on ${this.prefix}${prefix}`,
      logger: this.logger,
      onEvent: (raw) => {
        if (active) this.deliver(raw, listener);
      },
    });
    const stop = () => {
      active = false;
      this.watches.delete(stop);
      stopStream();
    };
    this.watches.add(stop);
    return stop;
  }

  close(): Promise<void> {
    this.closed = true;
    for (const stop of [...this.watches]) stop();
    return Promise.resolve();
  }

  private deliver(raw: RawEvent, listener: (e: WatchEvent) => void): void {
    const revision = Number(raw.kv.mod_revision);
    this.seen = Math.max(this.seen, revision);
    const key = unb64(raw.kv.key).slice(this.prefix.length);
    const e: WatchEvent =
      raw.type === 'DELETE'
        ? { type: 'delete', key, value: null, revision }
        : { type: 'put', key, value: unb64(raw.kv.value ?? ''), revision };
    try {
      listener(e);
    } catch (err) {
      this.logger?.error({ err_message: errorMessage(err), key }, 'a state store watch listener failed');
    }
  }

  private async range(body: Record<string, unknown>): Promise<RawKv[]> {
    const reply = await this.call<Header & { kvs?: RawKv[] }>('/v3/kv/range', body, RETRYABLE);
    return reply.kvs ?? [];
  }

  /** One gateway call: notes the revision, turns every failure into a StoreError. */
  private async call<T extends Header>(path: string, body: unknown, opts: CallOptions): Promise<T> {
    const reply = await this.guard(() => this.gateway.call<T>(path, body, opts));
    const revision = Number(reply.header?.revision ?? 0);
    if (revision > this.seen) this.seen = revision;
    return reply;
  }

  private async guard<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.closed) throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `${this.describe} is closed`);
    try {
      return await fn();
    } catch (e) {
      if (e instanceof StoreError) throw e;
      if (e instanceof EtcdReplyError && e.leaseNotFound)
        throw new StoreError(
          ErrorCodes.STORE_LEASE_NOT_FOUND,
          `lease has ended or never existed (${e.message})`,
        );
      throw new StoreError(
        ErrorCodes.STORE_UNAVAILABLE,
        `etcd (${this.gateway.describeEndpoints()}) refused the request: ${errorMessage(e)}`,
        { cause: e },
      );
    }
  }

  private revisionOf(reply: Header): number {
    const revision = Number(reply.header?.revision ?? 0);
    if (!(revision > 0))
      throw new StoreError(ErrorCodes.STORE_UNAVAILABLE, `${this.describe}: no revision in the reply`);
    return revision;
  }

  private toKeyValue(kv: RawKv): KeyValue {
    return {
      key: unb64(kv.key).slice(this.prefix.length),
      value: unb64(kv.value ?? ''),
      revision: Number(kv.mod_revision),
      lease: kv.lease && kv.lease !== '0' ? kv.lease : null,
    };
  }

  private full(key: string): string {
    return b64(this.prefix + key);
  }
}

function checkKey(key: string): string {
  if (key === '') throw new StoreError(ErrorCodes.INTERNAL, 'a store key cannot be empty');
  return key;
}

/** An http(s) URL without credentials, path kept (a reverse proxy may serve etcd under one). */
function normalizeEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new StoreError(ErrorCodes.CONFIG_INVALID, `etcd endpoint ${endpoint} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new StoreError(
      ErrorCodes.CONFIG_INVALID,
      `etcd endpoint ${url.host} must be an http:// or https:// URL`,
    );
  if (url.username || url.password)
    throw new StoreError(
      ErrorCodes.CONFIG_INVALID,
      `etcd endpoint ${url.host}: give the user and password as options, not in the URL`,
    );
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

function unb64(s: string): string {
  return Buffer.from(s, 'base64').toString('utf8');
}

/** etcd's range end for "every key with this prefix": the prefix with its last byte plus one. */
function rangeEnd(startB64: string): string {
  const bytes = Buffer.from(startB64, 'base64');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = bytes[i]! + 1;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}
