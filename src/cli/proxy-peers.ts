/**
 * Stateless proxies of one cluster find each other in etcd (several hosts), so that a cancel
 * request reaching a different proxy than the one holding the query still cancels it (as
 * PgBouncer 1.23's peering does). Each proxy takes a free number n in `proxies/<n>` (1..1023,
 * compare-and-set on absence, under a lease of its own) and shows it in the process ids it gives
 * its clients (cancel-key.ts: bits 30..21). A CancelRequest naming another number is sent on, as
 * is, to that proxy's advertised address; the proxy holding the client checks the key. No reply
 * is ever sent (PostgreSQL's rule), so a forged key learns nothing on either proxy.
 *
 * Each worker of a proxy with `proxy.workers` (cluster-proxy-worker.ts) registers as a proxy of
 * its own, all of them with the one address they share: a request for a number registered at this
 * proxy's own address goes to that worker through the primary (`sibling`), never over the
 * network, which would only land on this port again (on any worker). A request arriving from
 * another proxy reaches any worker here and takes that one step.
 */
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { errorMessage } from '../errors.js';
import type { LeaseId, StateStore } from '../ha/store.js';
import type { Logger } from '../obs/logger.js';
import { MAX_INSTANCE, instanceOf } from '../proxy/frontend/cancel-key.js';
import { encodeCancelRequest } from '../protocol/startup-messages.js';

const PREFIX = 'proxies/';

export const PROXY_KEYS_PREFIX = PREFIX;

/** What a proxy registers under `proxies/<n>` (`pgscale status` lists them). */
export interface PeerInfo {
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** A worker of a proxy with proxy.workers: its number there and its primary's pid. */
  readonly worker?: number;
  readonly primary?: number;
}

/** The address other proxies reach this one at: the listen address, or this host's first IPv4. */
export function advertisedHost(listen: string): string {
  if (listen !== '0.0.0.0' && listen !== '::' && listen !== '') return listen;
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') return a.address;
  return '127.0.0.1';
}

export class ProxyPeers {
  private lease: LeaseId | null = null;
  private timer: NodeJS.Timeout | null = null;
  private peers = new Map<number, PeerInfo>();

  private constructor(
    private readonly store: StateStore,
    readonly id: number,
    private readonly me: PeerInfo,
    private readonly log: Logger,
    private readonly ttlMs: number,
    private readonly sibling?: (processId: number, key: Buffer) => void,
  ) {}

  /**
   * Takes the lowest free number and keeps it (and the list of the others) up to date. `sibling`:
   * sends a request for another worker of this proxy there (a worker's; none: a proxy of one process).
   */
  static async join(
    store: StateStore,
    me: PeerInfo,
    log: Logger,
    ttlMs: number,
    sibling?: (processId: number, key: Buffer) => void,
  ): Promise<ProxyPeers> {
    const lease = await store.grantLease(ttlMs);
    const taken = new Set((await store.list(PREFIX)).map((kv) => Number(kv.key.slice(PREFIX.length))));
    for (let n = 1; n <= MAX_INSTANCE; n++) {
      if (taken.has(n)) continue;
      if ((await store.compareAndSet(`${PREFIX}${n}`, 0, JSON.stringify(me), { lease })) === null) continue;
      const peers = new ProxyPeers(store, n, me, log, ttlMs, sibling);
      peers.lease = lease;
      await peers.refresh();
      peers.schedule();
      return peers;
    }
    await store.revokeLease(lease).catch(() => undefined);
    throw new Error(`every proxy number (1..${MAX_INSTANCE}) is taken in the state store`);
  }

  /** The other registered proxies' numbers (as of the last refresh, at most a second old). */
  others(): number[] {
    return [...this.peers.keys()];
  }

  /** The lease of this proxy's registration (its other keys go with it: sharding-proxies.ts). */
  get leaseId(): LeaseId | null {
    return this.lease;
  }

  private schedule(): void {
    this.timer = setTimeout(
      () => {
        void this.refresh().finally(() => {
          if (this.timer) this.schedule();
        });
      },
      Math.min(1000, this.ttlMs / 4),
    );
  }

  private async refresh(): Promise<void> {
    try {
      if (this.lease && !(await this.store.keepAlive(this.lease)))
        this.log.warn(
          `proxy ${this.id}: its registration ended; cancels from other proxies may not reach it`,
        );
      const peers = new Map<number, PeerInfo>();
      for (const kv of await this.store.list(PREFIX)) {
        const n = Number(kv.key.slice(PREFIX.length));
        if (n !== this.id) peers.set(n, JSON.parse(kv.value) as PeerInfo);
      }
      const before = [...this.peers.keys()].sort().join(',');
      const after = [...peers.keys()].sort().join(',');
      if (before !== after) this.log.info(`proxy ${this.id}: the other proxies are now [${after}]`);
      this.peers = peers;
    } catch (e) {
      this.log.debug(`proxy ${this.id}: the list of proxies was not refreshed: ${errorMessage(e)}`);
      // the next refresh tries again; the last list stays
    }
  }

  /** Sends a CancelRequest for another proxy's client there (fire and forget). */
  forward(processId: number, key: Buffer, again = true): void {
    const n = instanceOf(processId);
    const peer = this.peers.get(n);
    if (!peer) {
      // A proxy that started within the last refresh: read the list now, once.
      if (again) void this.refresh().then(() => this.forward(processId, key, false));
      else this.log.info(`a cancel request for proxy ${n}, which is not registered: dropped`);
      return;
    }
    if (peer.host === this.me.host && peer.port === this.me.port) {
      // Registered at this proxy's own address: another worker of it (or one that is gone, whose
      // registration lasts until its lease ends: the primary drops the request then).
      if (this.sibling) this.sibling(processId, key);
      else this.log.info(`a cancel request for proxy ${n}, registered at this proxy's own address: dropped`);
      return;
    }
    this.log.info(`a cancel request for a client of proxy ${n}: sent to ${peer.host}:${peer.port}`);
    const s = connect({ host: peer.host, port: peer.port });
    s.setTimeout(5000, () => s.destroy());
    s.on('error', (e) => this.log.debug(`cancel to proxy at ${peer.host}:${peer.port}: ${errorMessage(e)}`));
    s.on('connect', () => s.end(encodeCancelRequest({ processId, secretKey: key })));
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.lease) await this.store.revokeLease(this.lease).catch(() => undefined);
    this.lease = null;
  }
}
