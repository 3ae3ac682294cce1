/**
 * High availability inside the controller: the decide loop. Every `loop_wait` it takes one
 * immutable snapshot per shard (the store's leader key and epoch, each node's data directory and
 * probe), asks decide() for one action, logs it in one line and carries it out. It renews the
 * leader lease while the leader is a healthy primary, publishes the topology the proxy routes by
 * (no primary while a shard has none it can vouch for: the proxy then holds new transactions),
 * and records every event in the store's history.
 *
 * Safety rules, in the order they bite:
 * - nothing is promoted without first winning the leader key by compare-and-set, with an epoch
 *   one higher than any before;
 * - a former primary is fenced (every process killed, standby.signal and the rejoin marker
 *   written) before a standby is promoted, and runs again only after pg_rewind or a clone;
 * - a second writable node is fenced as soon as it is seen;
 * - when the store cannot be reached for a whole TTL, the primary is stopped (no writes without
 *   a lease), and nothing is promoted until the store answers again;
 * - in synchronous mode the candidate must be the most advanced of enough standbys to hold every
 *   acknowledged commit (see pickCandidate).
 * Time-outs are measured with performance.now() (monotonic); wall-clock time only labels events.
 */
import { performance } from 'node:perf_hooks';
import type { Cluster } from '../cluster/cluster.js';
import { slotName } from '../cluster/conf.js';
import { formatLsn } from '../protocol/lsn.js';
import { isProvisioned, isStandbyDir, runningPid } from '../cluster/instance.js';
import type { LoadedConfig, NodeRef } from '../config/load.js';
import type { HaConfig } from '../config/schema.js';
import { ErrorCodes, PgscaleError, errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import type { Endpoint, Topology, TopologyView } from '../topology/topology.js';
import type { Action, Leader, MemberView, Request, ShardSnapshot } from './decide.js';
import { decideAround, healthyPrimary, pickCandidate } from './decide.js';
import type { HaControl, HaEvent, RequestOutcome, RouteResult } from './ha-routes.js';
import { HISTORY_LIMIT, handleHaRoute } from './ha-routes.js';
import { HaHistory, lastFailovers } from './ha-history.js';
import type { HaMetricsSnapshot } from './ha-metrics.js';
import type { ProbeResult } from './probe.js';
import { NodeProber } from './probe.js';
import type { KeyValue, LeaseId, StateStore } from './store.js';

export class HaError extends PgscaleError {}

export type { HaEvent } from './ha-routes.js';

interface Tracker {
  downSince: number | null;
  unreachableSince: number | null;
  notStreamingSince: number | null;
  last: ProbeResult | null;
}

interface PendingRequest {
  request: Request;
  resolve: (r: { ok: true; events: HaEvent[] } | { ok: false; reason: string }) => void;
  since: number;
}

interface ShardState {
  leaderKv: KeyValue | null;
  leader: Leader | null;
  lastEpoch: number;
  lastPrimaryLsn: bigint | null;
  lastRefusal: string | null;
  lastNone: string | null;
  /** Done by this controller since it started (metrics). */
  failovers: number;
  switchovers: number;
  /** Unix ms of the last failover's promotion (read back from the history at start). */
  lastFailoverAt: number | null;
  /**
   * Actions that failed (by kind:node), how often in a row, and when each may run again: one per
   * action, so that two failing actions do not take turns at being news every cycle.
   */
  failures: Map<string, { message: string; count: number; retryAt: number }>;
}

/** A failing action is retried after loop_wait × 2^failures, at most this long (ms). */
const FAILURE_BACKOFF_MAX_MS = 30_000;

function actionKey(a: Action): string {
  return `${a.kind}:${'node' in a ? a.node : 'to' in a ? a.to : ''}`;
}

const KEY = {
  leader: (s: number) => `shards/${s}/leader`,
  epoch: (s: number) => `shards/${s}/epoch`,
  paused: 'paused',
};

export class HaService implements HaControl {
  readonly name = 'ha';
  private readonly probers = new Map<string, NodeProber>();
  private readonly trackers = new Map<string, Tracker>();
  private readonly shards: ShardState[];
  private readonly requests = new Map<number, PendingRequest>();
  /** Long actions (rejoin, standby restart) running in the background, by node. */
  private readonly busy = new Map<string, Promise<void>>();
  private readonly cfg: HaConfig;
  private storeRef: StateStore | null = null;
  private timer: NodeJS.Timeout | null = null;
  private cycle: Promise<void> | null = null;
  private stopped = false;
  private lease: LeaseId | null = null;
  private lastRenew = 0;
  private lastStoreOk = performance.now();
  private storeDown = false;
  private paused = false;
  private published = '';
  private topologyEpoch = 0;
  private readonly events = new HaHistory(() => this.store);
  private cycles = 0;
  private lastCycleAt: string | null = null;

  constructor(
    private readonly loaded: LoadedConfig,
    private readonly cluster: Cluster,
    private readonly openStore: () => Promise<StateStore>,
    private readonly view: TopologyView,
    private readonly log: Logger,
  ) {
    this.cfg = loaded.config.ha;
    this.shards = loaded.config.shards.map(() => ({
      leaderKv: null,
      leader: null,
      lastEpoch: 0,
      lastPrimaryLsn: null,
      lastRefusal: null,
      lastNone: null,
      failovers: 0,
      switchovers: 0,
      lastFailoverAt: null,
      failures: new Map(),
    }));
    this.syncMembers();
  }

  /**
   * A prober and a tracker per node of the cluster, as its node list is now: add-replica and
   * remove-replica change it while the controller runs (Cluster.reloadMembers), and the next
   * cycle takes the new node in (or lets the removed one go).
   */
  private syncMembers(): void {
    const nodes = this.cluster.nodes();
    const names = new Set(nodes.map((n) => n.name));
    for (const [name, prober] of this.probers) {
      if (names.has(name)) continue;
      prober.close();
      this.probers.delete(name);
      this.trackers.delete(name);
    }
    for (const n of nodes) {
      if (this.probers.has(n.name)) continue;
      // A probe may take a third of unreachable_timeout: a busy server is slow, not dead.
      const probeMs = Math.max(1000, (this.cfg.unreachable_timeout * 1000) / 3);
      this.probers.set(n.name, new NodeProber(() => this.cluster.target(n), probeMs));
      this.trackers.set(n.name, {
        downSince: null,
        unreachableSince: null,
        notStreamingSince: null,
        last: null,
      });
    }
  }

  private get loopMs(): number {
    return this.cfg.loop_wait * 1000;
  }

  // ---------------------------------------------------------------- service

  private get store(): StateStore {
    if (!this.storeRef) throw new HaError(ErrorCodes.INTERNAL, 'high availability has not started');
    return this.storeRef;
  }

  async start(): Promise<void> {
    this.storeRef = await this.openStore();
    this.paused = (await this.store.get(KEY.paused).catch(() => null))?.value === 'true';
    const last = lastFailovers(await this.history().catch(() => []), this.shards.length);
    for (const [shard, st] of this.shards.entries()) st.lastFailoverAt = last[shard] ?? null;
    // One cycle before the proxy starts, so that it begins with a topology it can trust.
    for (let i = 0; i < 3; i++) {
      await this.runCycle();
      if (this.shards.every((s) => s.leader !== null)) break;
    }
    this.schedule();
    this.log.info(
      { store: this.store.describe, loop_wait: this.cfg.loop_wait, ttl: this.cfg.ttl, paused: this.paused },
      `high availability running (store: ${this.store.describe}${this.paused ? '; paused' : ''})`,
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.cycle?.catch(() => undefined);
    await Promise.all(this.busy.values());
    for (const r of this.requests.values()) r.resolve({ ok: false, reason: 'the controller is stopping' });
    this.requests.clear();
    for (const p of this.probers.values()) p.close();
    await this.storeRef?.close().catch(() => undefined);
    this.storeRef = null;
  }

  status(): unknown {
    return {
      store: this.storeRef?.describe ?? null,
      store_reachable: !this.storeDown,
      paused: this.paused,
      cycles: this.cycles,
      last_cycle_at: this.lastCycleAt,
      shards: this.shards.map((s, shard) => ({
        shard,
        leader: s.leader?.node ?? null,
        epoch: s.leader?.epoch ?? s.lastEpoch,
        last_primary_lsn: s.lastPrimaryLsn === null ? null : formatLsn(s.lastPrimaryLsn),
        last_refusal: s.lastRefusal,
      })),
    };
  }

  /** What GET /metrics shows of HA (see ha-metrics.ts). */
  metricsSnapshot(): HaMetricsSnapshot {
    return {
      paused: this.paused,
      storeReachable: !this.storeDown,
      cycles: this.cycles,
      shards: this.shards.map((s, shard) => ({
        shard,
        nodes: this.nodesOf(shard),
        leader: s.leader?.node ?? null,
        epoch: s.leader?.epoch ?? s.lastEpoch,
        failovers: s.failovers,
        switchovers: s.switchovers,
        lastFailoverAt: s.lastFailoverAt,
      })),
    };
  }

  // ---------------------------------------------------------------- requests (CLI, HTTP API)

  /** GET /ha, GET /ha/history, POST /ha/switchover|failover|pause|resume (see ha-routes.ts). */
  handle(method: string, path: string, body: unknown, query: URLSearchParams): Promise<RouteResult | null> {
    return handleHaRoute(this, method, path, body, query);
  }

  get isPaused(): boolean {
    return this.paused;
  }

  get shardCount(): number {
    return this.shards.length;
  }

  nodesOf(shard: number): string[] {
    return this.shardNodes(shard).map((n) => n.name);
  }

  /** Queues a switchover or failover for the next cycle; resolves when it is done or refused. */
  request(shard: number, request: Request, timeoutMs = 120_000): Promise<RequestOutcome> {
    if (shard < 0 || shard >= this.shards.length) {
      return Promise.resolve({ ok: false, reason: `there is no shard ${shard}` });
    }
    if (this.requests.has(shard)) {
      return Promise.resolve({
        ok: false,
        reason: `a ${this.requests.get(shard)!.request.kind} of shard ${shard} is already in progress`,
      });
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.requests.get(shard)?.resolve === done) this.requests.delete(shard);
        resolve({ ok: false, reason: `not done within ${timeoutMs / 1000} s` });
      }, timeoutMs);
      const done = (r: { ok: true; events: HaEvent[] } | { ok: false; reason: string }) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.requests.set(shard, { request, resolve: done, since: performance.now() });
      this.kick();
    });
  }

  async setPaused(paused: boolean): Promise<void> {
    if (paused) await this.store.put(KEY.paused, 'true');
    else {
      const kv = await this.store.get(KEY.paused);
      if (kv) await this.store.compareAndDelete(KEY.paused, kv.revision);
    }
    this.paused = paused;
    await this.record({ shard: -1, event: paused ? 'ha_paused' : 'ha_resumed' });
    this.log.info(paused ? 'automatic failover paused' : 'automatic failover resumed');
  }

  history(limit = HISTORY_LIMIT): Promise<HaEvent[]> {
    return this.events.list(limit);
  }

  // ---------------------------------------------------------------- the loop

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runCycle().finally(() => this.schedule());
    }, this.loopMs);
  }

  /** Runs a cycle now if none is running (a request arrived). */
  private kick(): void {
    if (this.cycle || this.stopped || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    void this.runCycle().finally(() => this.schedule());
  }

  private runCycle(): Promise<void> {
    this.cycle ??= this.doCycle()
      .catch((e: unknown) => this.log.error({ err: e }, `HA cycle failed: ${errorMessage(e)}`))
      .finally(() => {
        this.cycle = null;
      });
    return this.cycle;
  }

  private async doCycle(): Promise<void> {
    this.syncMembers();
    this.cycles++;
    this.lastCycleAt = new Date().toISOString();
    // Busy before the probes: a background start or rejoin that ends while they run must not
    // look like a stopped node to this cycle (it would be started, or rewound, a second time).
    const busyAtProbe = new Set(this.busy.keys());
    const probes = await this.probeAll();
    let storeOk = true;
    for (let shard = 0; shard < this.shards.length; shard++) {
      if (this.stopped) return;
      try {
        await this.readShard(shard);
      } catch (e) {
        storeOk = false;
        this.onStoreError(e);
        continue;
      }
      const snap = this.snapshot(shard, probes, busyAtProbe);
      const action = this.decideAroundBackoff(shard, snap);
      if (action === null) continue;
      try {
        await this.act(shard, snap, action);
        // Background actions (start_standby, rejoin) clear their own failure when they succeed.
        if (action.kind !== 'start_standby' && action.kind !== 'rejoin') {
          this.shards[shard]!.failures.delete(actionKey(action));
        }
      } catch (e) {
        if (isStoreError(e)) {
          storeOk = false;
          this.onStoreError(e);
        } else {
          const msg = errorMessage(e);
          if (this.noteFailure(shard, actionKey(action), msg)) {
            this.log.error({ err: e, shard, action: action.kind }, `${action.kind} failed: ${msg}`);
            await this.record({ shard, event: `${action.kind}_failed`, detail: msg }).catch(() => undefined);
          }
          this.finishRequest(shard, { ok: false, reason: `${action.kind} failed: ${msg}` });
        }
      }
    }
    if (storeOk) {
      if (this.storeDown) this.log.info('the state store answers again');
      this.storeDown = false;
      this.lastStoreOk = performance.now();
      await this.events.flush().catch((e: unknown) => this.onStoreError(e));
    } else {
      await this.leaseLost();
    }
    this.publish();
  }

  /**
   * decide(), except that an action that failed a moment ago, and that nothing asks for now,
   * waits out its back-off rather than fail (and write to the store) every cycle; the other
   * members go on being looked after meanwhile (see decideAround).
   */
  private decideAroundBackoff(shard: number, snap: ShardSnapshot): Action | null {
    const failures = this.shards[shard]!.failures;
    const now = performance.now();
    return decideAround(snap, (a) => {
      const f = failures.get(actionKey(a));
      return f !== undefined && now < f.retryAt && !snap.request;
    });
  }

  /**
   * Counts a failure of an action and sets its back-off; true when it is news (not the action
   * that failed last time), which alone is logged as an error and written to history:
   * a shard left without a primary must not write the same failure every cycle.
   */
  private noteFailure(shard: number, key: string, message: string): boolean {
    const st = this.shards[shard]!;
    // By action alone: a failure's message often carries times and pids (a log tail). A streak
    // ends when the action was not tried again soon after its back-off (nothing needed it).
    const last = st.failures.get(key);
    const prev = last && performance.now() - last.retryAt < FAILURE_BACKOFF_MAX_MS ? last : undefined;
    const same = prev !== undefined;
    const count = (prev?.count ?? 0) + 1;
    const delay = Math.min(this.loopMs * 2 ** count, FAILURE_BACKOFF_MAX_MS);
    st.failures.set(key, { message, count, retryAt: performance.now() + delay });
    if (same) {
      this.log.warn(
        { shard, action: key, failures: count },
        `${key} failed again (${count} times in a row), next try in ${Math.round(delay / 1000)} s: ${message}`,
      );
    }
    return !same;
  }

  private async probeAll(): Promise<Map<string, ProbeResult | null>> {
    const out = new Map<string, ProbeResult | null>();
    const t = performance.now();
    await Promise.all(
      this.cluster.nodes().map(async (n) => {
        const { pgdata } = this.cluster.paths(n.name);
        const tr = this.trackers.get(n.name)!;
        const running = isProvisioned(pgdata) && runningPid(pgdata) !== null;
        if (!running) {
          this.probers.get(n.name)!.drop();
          tr.downSince ??= t;
          tr.unreachableSince = null;
          tr.last = null;
          out.set(n.name, null);
          return;
        }
        tr.downSince = null;
        const r = await this.probers.get(n.name)!.probe();
        tr.last = r;
        if (r.ok) tr.unreachableSince = null;
        else tr.unreachableSince ??= t;
        out.set(n.name, r);
      }),
    );
    return out;
  }

  private async readShard(shard: number): Promise<void> {
    const st = this.shards[shard]!;
    const [leaderKv, epochKv] = await Promise.all([
      this.store.get(KEY.leader(shard)),
      this.store.get(KEY.epoch(shard)),
    ]);
    st.leaderKv = leaderKv;
    st.leader = leaderKv ? (JSON.parse(leaderKv.value) as Leader) : null;
    const recorded = epochKv ? (JSON.parse(epochKv.value) as { epoch: number }).epoch : 0;
    st.lastEpoch = Math.max(recorded, st.leader?.epoch ?? 0, st.lastEpoch);
  }

  private snapshot(
    shard: number,
    probes: Map<string, ProbeResult | null>,
    busyAtProbe: ReadonlySet<string> = new Set(),
  ): ShardSnapshot {
    const st = this.shards[shard]!;
    const t = performance.now();
    const members: MemberView[] = this.shardNodes(shard).map((n) => {
      const { pgdata } = this.cluster.paths(n.name);
      const tr = this.trackers.get(n.name)!;
      const p = probes.get(n.name) ?? null;
      const upstreamAddr = this.cluster.upstreamOf(n);
      const upstream =
        upstreamAddr === null
          ? null
          : (this.shardNodes(shard).find(
              (x) => x.port === upstreamAddr.port && sameHost(x.host, upstreamAddr.host),
            )?.name ?? `${upstreamAddr.host}:${upstreamAddr.port}`);
      const standbyDir = isProvisioned(pgdata) && isStandbyDir(pgdata);
      const m: MemberView = {
        name: n.name,
        priority: n.priority,
        nofailover: n.nofailover,
        provisioned: isProvisioned(pgdata),
        standbyDir,
        needsRejoin: this.cluster.needsRejoin(n),
        running: p !== null,
        reachable: p?.ok ?? false,
        inRecovery: p?.inRecovery ?? null,
        currentLsn: p?.currentLsn ?? null,
        receiveLsn: p?.receiveLsn ?? null,
        replayLsn: p?.replayLsn ?? null,
        streaming: p?.streaming ?? false,
        upstream,
        downForMs: tr.downSince === null ? 0 : t - tr.downSince,
        unreachableForMs: tr.unreachableSince === null ? 0 : t - tr.unreachableSince,
        notStreamingForMs: 0,
        busy: this.busy.has(n.name) || busyAtProbe.has(n.name),
      };
      // How long a running standby of the leader has not been streaming.
      const standbyOfLeader = m.reachable && m.inRecovery === true && m.upstream === st.leader?.node;
      if (standbyOfLeader && !m.streaming) tr.notStreamingSince ??= t;
      else tr.notStreamingSince = null;
      return { ...m, notStreamingForMs: tr.notStreamingSince === null ? 0 : t - tr.notStreamingSince };
    });
    const leader = st.leader ? members.find((m) => m.name === st.leader!.node) : undefined;
    if (leader && healthyPrimary(leader) && leader.currentLsn !== null) st.lastPrimaryLsn = leader.currentLsn;
    const mode = this.loaded.config.replication.synchronous;
    return {
      shard,
      leader: st.leader,
      lastEpoch: st.lastEpoch,
      lastPrimaryLsn: st.lastPrimaryLsn,
      paused: this.paused,
      request: this.requests.get(shard)?.request ?? null,
      members,
      settings: {
        primaryDownGraceMs: this.cfg.primary_down_grace * 1000,
        unreachableTimeoutMs: this.cfg.unreachable_timeout * 1000,
        maximumLagOnFailover: this.cfg.maximum_lag_on_failover,
        rejoin: this.cfg.rejoin,
        syncQuorum: mode === 'off' ? null : mode === 'on' ? 1 : Number(mode.slice('quorum '.length)),
        notStreamingRejoinMs: 15_000,
      },
    };
  }

  // ---------------------------------------------------------------- actions

  private async act(shard: number, snap: ShardSnapshot, a: Action): Promise<void> {
    const st = this.shards[shard]!;
    if (a.kind !== 'none' && a.kind !== 'refuse') {
      this.log.info(
        { shard, action: a.kind, ...('node' in a ? { node: a.node } : {}) },
        `shard ${shard}: ${describe(a)}`,
      );
    }
    switch (a.kind) {
      case 'none':
        if (st.leader && healthyPrimary(snap.members.find((m) => m.name === st.leader!.node)!)) {
          await this.renew(shard);
        }
        if (a.reason !== st.lastNone && a.reason !== 'healthy') {
          this.log.info({ shard }, `shard ${shard}: ${a.reason}`);
        }
        st.lastNone = a.reason;
        return;
      case 'refuse':
        if (a.reason !== st.lastRefusal) {
          this.log.warn({ shard }, `shard ${shard}: ${a.reason}`);
          await this.record({ shard, event: 'refused', detail: a.reason });
        }
        st.lastRefusal = a.reason;
        this.finishRequest(shard, { ok: false, reason: a.reason });
        return;
      case 'acquire':
        return this.acquire(shard, a.node);
      case 'start_primary':
        await this.cluster.startPrimary(this.node(a.node));
        await this.record({ shard, event: 'primary_started', node: a.node, detail: a.reason });
        return;
      case 'fence': {
        const killed = this.cluster.fence(this.node(a.node));
        await this.record({
          shard,
          event: 'fenced',
          node: a.node,
          detail: `${a.reason}; ${killed} processes killed`,
        });
        return;
      }
      case 'repoint':
        await this.renew(shard);
        await this.cluster.repoint(this.node(a.node), this.node(st.leader!.node));
        await this.record({ shard, event: 'repointed', node: a.node, detail: a.reason });
        return;
      case 'start_standby': {
        await this.renew(shard);
        const leader = this.node(st.leader!.node);
        this.background(shard, a.node, 'start_standby', async () => {
          try {
            await this.cluster.startStandby(this.node(a.node), leader);
          } catch (e) {
            // A standby that cannot start under the leader has most likely diverged: rewind it next.
            this.cluster.markForRejoin(this.node(a.node));
            throw e;
          }
          await this.record({ shard, event: 'standby_restarted', node: a.node });
        });
        return;
      }
      case 'rejoin': {
        await this.renew(shard);
        const t0 = performance.now();
        const leader = this.node(st.leader!.node);
        // In the background: a rewind takes seconds and a clone minutes, during which the loop
        // must go on watching the primary (and the proxy must not wait for it).
        this.background(shard, a.node, 'rejoin', async () => {
          const how = await this.cluster.rejoin(this.node(a.node), leader);
          this.trackers.get(a.node)!.notStreamingSince = null;
          await this.record({
            shard,
            event: 'rejoined',
            node: a.node,
            detail: `${how} in ${ms(t0)} ms; follows ${leader.name}`,
          });
        });
        return;
      }
      case 'failover':
        return this.failover(shard, snap, a.from, a.to, a.reason);
      case 'switchover':
        return this.switchover(shard, a.from, a.to);
    }
  }

  private background(shard: number, node: string, what: string, fn: () => Promise<void>): void {
    const task = fn()
      .then(() => {
        this.shards[shard]!.failures.delete(`${what}:${node}`);
      })
      .catch(async (e: unknown) => {
        if (!this.noteFailure(shard, `${what}:${node}`, errorMessage(e))) return;
        this.log.error({ err: e, shard, node }, `${what} of ${node} failed: ${errorMessage(e)}`);
        await this.record({ shard, event: `${what}_failed`, node, detail: errorMessage(e) }).catch(
          () => undefined,
        );
      })
      .finally(() => this.busy.delete(node));
    this.busy.set(node, task);
  }

  private async acquire(shard: number, node: string): Promise<void> {
    const st = this.shards[shard]!;
    const epochKv = await this.store.get(KEY.epoch(shard));
    const prev = epochKv ? (JSON.parse(epochKv.value) as { epoch: number; node: string }) : null;
    const epoch = prev && prev.node === node ? prev.epoch : Math.max(st.lastEpoch, prev?.epoch ?? 0) + 1;
    const lease = await this.ourLease();
    const value = JSON.stringify({ node, epoch } satisfies Leader);
    const rev = await this.store.compareAndSet(KEY.leader(shard), 0, value, { lease });
    if (rev === null) return; // someone else took it meanwhile; next cycle sees who
    await this.store.put(KEY.epoch(shard), JSON.stringify({ epoch, node }));
    st.leader = { node, epoch };
    st.lastEpoch = epoch;
    await this.record({ shard, event: 'leader_acquired', node, epoch });
  }

  /** Our lease (granted on first use, again when it ended). */
  private async ourLease(): Promise<LeaseId> {
    if (this.lease && (await this.store.keepAlive(this.lease))) return this.lease;
    this.lease = await this.store.grantLease(this.cfg.ttl * 1000);
    this.lastRenew = performance.now();
    return this.lease;
  }

  /** Keeps the leader key's lease alive (at most every TTL/4) while its node is healthy. */
  private async renew(shard: number): Promise<void> {
    const kv = this.shards[shard]!.leaderKv;
    if (!kv?.lease) return;
    if (performance.now() - this.lastRenew < (this.cfg.ttl * 1000) / 4) return;
    const alive = await this.store.keepAlive(kv.lease);
    this.lastRenew = performance.now();
    if (!alive) this.log.warn({ shard }, `shard ${shard}: the leader lease had ended; it is taken again`);
  }

  private async failover(
    shard: number,
    snap: ShardSnapshot,
    from: string | null,
    wanted: string,
    reason: string,
  ): Promise<void> {
    const st = this.shards[shard]!;
    const t0 = performance.now();
    const events: HaEvent[] = [];
    const note = async (e: Omit<HaEvent, 'at'>) => events.push(await this.record(e));
    await note({ shard, event: 'failover_detected', ...(from ? { node: from } : {}), detail: reason });
    this.hold(shard);
    if (from) {
      const killed = this.cluster.fence(this.node(from));
      await note({ shard, event: 'fenced', node: from, detail: `${killed} processes killed (${ms(t0)} ms)` });
    }
    // Fresh positions now that the old primary cannot send anything more.
    const probes = new Map<string, ProbeResult | null>();
    for (const m of snap.members) {
      if (m.name === from || !m.running) probes.set(m.name, null);
      else probes.set(m.name, await this.probers.get(m.name)!.probe());
    }
    const fresh = this.snapshot(shard, probes);
    const requested = this.requests.get(shard)?.request.to ?? null;
    const pick = pickCandidate(fresh, from, requested ?? null);
    if ('refuse' in pick) {
      await note({ shard, event: 'failover_refused', detail: pick.refuse });
      this.finishRequest(shard, { ok: false, reason: pick.refuse });
      throw new HaError(ErrorCodes.HA_REFUSED, `failover of shard ${shard} refused: ${pick.refuse}`);
    }
    const to = pick.node;
    if (to !== wanted) this.log.info({ shard }, `fresher positions favour ${to} over ${wanted}`);
    // The leader key first: nothing is promoted unless this controller won it.
    const epoch = st.lastEpoch + 1;
    const lease = await this.ourLease();
    const value = JSON.stringify({ node: to, epoch } satisfies Leader);
    const rev = st.leaderKv
      ? await this.store.compareAndSet(KEY.leader(shard), st.leaderKv.revision, value, { lease })
      : await this.store.compareAndSet(KEY.leader(shard), 0, value, { lease });
    if (rev === null) {
      throw new HaError(
        ErrorCodes.HA_REFUSED,
        `shard ${shard}: the leader key changed under us; not promoting`,
      );
    }
    await this.store.put(KEY.epoch(shard), JSON.stringify({ epoch, node: to }));
    st.leader = { node: to, epoch };
    st.leaderKv = null;
    st.lastEpoch = epoch;
    const newPrimary = this.node(to);
    await this.promote(newPrimary);
    st.failovers++;
    st.lastFailoverAt = Date.now();
    await note({ shard, event: 'promoted', node: to, epoch, detail: `${ms(t0)} ms after detection` });
    await this.afterPromotion(shard, newPrimary, from, note, t0);
    this.finishRequest(shard, { ok: true, events });
  }

  /** New primary: slots and synchronous names for its standbys, topology, standbys re-pointed. */
  private async afterPromotion(
    shard: number,
    primary: NodeRef,
    former: string | null,
    note: (e: Omit<HaEvent, 'at'>) => Promise<unknown>,
    t0: number,
  ): Promise<void> {
    const others = this.shardNodes(shard).filter(
      (n) => n.name !== primary.name && isProvisioned(this.cluster.paths(n.name).pgdata),
    );
    // Over the probe connection (already authenticated): every millisecond here is one without
    // writes. Synchronous names are in place before the proxy sends the first write.
    const prober = this.probers.get(primary.name)!;
    for (const n of others) {
      await prober.query(
        `SELECT pg_create_physical_replication_slot($1, true)
          WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
        [slotName(n.name)],
      );
    }
    this.cluster.writePrimaryConf(primary);
    await prober.query('SELECT pg_reload_conf()');
    // Until the next probe, what we know: it is the primary now.
    const tr = this.trackers.get(primary.name)!;
    if (tr.last) tr.last = { ...tr.last, inRecovery: false, ok: true };
    this.publishNow(shard, primary);
    await note({
      shard,
      event: 'proxy_switched',
      node: primary.name,
      detail: `${ms(t0)} ms after detection`,
    });
    for (const n of others) {
      if (n.name === former) continue;
      if (runningPid(this.cluster.paths(n.name).pgdata) === null) continue;
      await this.cluster
        .repoint(n, primary)
        .catch((e: unknown) =>
          this.log.warn(
            { shard, node: n.name },
            `re-pointing ${n.name} failed (retried): ${errorMessage(e)}`,
          ),
        );
    }
  }

  private async switchover(shard: number, from: string, to: string): Promise<void> {
    const st = this.shards[shard]!;
    const events: HaEvent[] = [];
    const note = async (e: Omit<HaEvent, 'at'>) => events.push(await this.record(e));
    const old = this.node(from);
    const target = this.node(to);
    const prober = this.probers.get(from)!;
    await note({ shard, event: 'switchover_started', node: from, detail: `to ${to}` });
    // A checkpoint before holding anything keeps the shutdown checkpoint (inside the pause) short.
    await prober.query('CHECKPOINT').catch(() => undefined);
    const t0 = performance.now();
    this.hold(shard);
    const deadline = t0 + this.cfg.switchover_timeout * 1000;
    let busy = 0;
    // Three quiet samples in a row: a statement a client sent just before the hold may still be
    // on its way to the server when one sample looks.
    let quiet = 0;
    for (;;) {
      const rows = await prober
        .query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
              AND xact_start IS NOT NULL AND application_name <> 'pgscale ha'`,
        )
        .catch(() => [{ n: '0' }]);
      busy = Number(rows[0]?.n ?? 0);
      quiet = busy === 0 ? quiet + 1 : 0;
      if (quiet >= 3 || performance.now() > deadline) break;
      await sleep(5);
    }
    const lastLsn = (await prober.probe()).currentLsn;
    await this.cluster.stopNode(old, 'fast');
    await note({
      shard,
      event: 'demoted',
      node: from,
      detail: `stopped after ${ms(t0)} ms${busy ? ` (${busy} transactions still open were ended)` : ''}`,
    });
    // The target must have received everything the old primary wrote (its shutdown checkpoint).
    const caughtUp = async () => {
      const p = await this.probers.get(to)!.probe();
      return p.ok && lastLsn !== null && p.receiveLsn !== null && p.receiveLsn > lastLsn;
    };
    let ok = await caughtUp();
    for (let i = 0; !ok && i < 100; i++) {
      await sleep(5);
      ok = await caughtUp();
    }
    if (!ok) {
      await this.cluster.startPrimary(old);
      this.publishNow(shard, old);
      const reason = `${to} did not receive the old primary's last WAL; ${from} restarted as the primary`;
      await note({ shard, event: 'switchover_aborted', node: from, detail: reason });
      this.finishRequest(shard, { ok: false, reason });
      return;
    }
    const epoch = st.lastEpoch + 1;
    const lease = await this.ourLease();
    const rev = await this.store.compareAndSet(
      KEY.leader(shard),
      st.leaderKv?.revision ?? 0,
      JSON.stringify({ node: to, epoch } satisfies Leader),
      { lease },
    );
    if (rev === null)
      throw new HaError(ErrorCodes.HA_REFUSED, 'the leader key changed during the switchover');
    await this.store.put(KEY.epoch(shard), JSON.stringify({ epoch, node: to }));
    st.leader = { node: to, epoch };
    st.leaderKv = null;
    st.lastEpoch = epoch;
    await this.promote(target);
    await note({ shard, event: 'promoted', node: to, epoch, detail: `${ms(t0)} ms after the hold` });
    await this.afterPromotion(shard, target, from, note, t0);
    const pause = ms(t0);
    st.switchovers++;
    // The old primary shut down cleanly and the target has all of its WAL: it follows as is.
    await this.cluster.startStandby(old, target);
    await note({
      shard,
      event: 'switchover_done',
      node: to,
      epoch,
      detail: `new transactions held for ${pause} ms; ${from} follows ${to}`,
    });
    this.finishRequest(shard, { ok: true, events });
  }

  /** pg_promote() without its 100 ms polling, over the probe connection. */
  private async promote(n: NodeRef): Promise<void> {
    const prober = this.probers.get(n.name)!;
    try {
      await prober.query('SELECT pg_promote(false)');
    } catch {
      return this.cluster.promote(n);
    }
    const deadline = performance.now() + 60_000;
    while (performance.now() < deadline) {
      const r = await prober.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec').catch(() => null);
      if (r && r[0]?.rec === false) return;
      await sleep(5);
    }
    throw new HaError(ErrorCodes.TIMEOUT, `${n.name} did not finish its promotion within 60 s`);
  }

  private finishRequest(
    shard: number,
    r: { ok: true; events: HaEvent[] } | { ok: false; reason: string },
  ): void {
    const p = this.requests.get(shard);
    if (!p) return;
    this.requests.delete(shard);
    p.resolve(r);
  }

  // ---------------------------------------------------------------- store trouble

  private onStoreError(e: unknown): void {
    if (!this.storeDown) {
      this.log.warn(
        { err: e },
        `the state store does not answer (${errorMessage(e)}); no failover until it does`,
      );
    }
    this.storeDown = true;
  }

  /**
   * The store has not answered for a whole TTL: our lease may have ended and another controller
   * may promote a standby, so the primaries we run stop accepting writes (fast shutdown).
   */
  private async leaseLost(): Promise<void> {
    if (performance.now() - this.lastStoreOk < this.cfg.ttl * 1000) return;
    for (let shard = 0; shard < this.shards.length; shard++) {
      const st = this.shards[shard]!;
      const node = st.leader?.node;
      if (!node) continue;
      const n = this.node(node);
      if (runningPid(this.cluster.paths(n.name).pgdata) === null) continue;
      this.hold(shard);
      this.log.error(
        { shard, node },
        `shard ${shard}: no lease for ${this.cfg.ttl} s (state store unreachable); stopping primary ${node}`,
      );
      const stopped = await this.cluster.stopNode(n, 'fast').then(
        () => 'stopped',
        (e: unknown) => `stop failed: ${errorMessage(e)}`,
      );
      st.leader = null;
      st.leaderKv = null;
      // The store is what cannot be reached: the event waits for it.
      this.events.defer({
        shard,
        event: 'primary_stopped',
        node,
        detail: `no lease for ${this.cfg.ttl} s (state store unreachable); ${stopped}`,
      });
    }
  }

  // ---------------------------------------------------------------- topology

  private held = new Set<number>();

  /** Publishes the shard without a primary: the proxy holds its new transactions. */
  private hold(shard: number): void {
    this.held.add(shard);
    this.publish();
  }

  private publishNow(shard: number, primary: NodeRef): void {
    this.held.delete(shard);
    this.publish(new Map([[shard, primary.name]]));
  }

  /** The topology from the latest probes; published when it changed. */
  private publish(forced?: Map<number, string>): void {
    const shards = this.shards.map((st, shard) => {
      const forcedPrimary = forced?.get(shard);
      const leaderName = forcedPrimary ?? st.leader?.node ?? null;
      const leaderOk =
        forcedPrimary !== undefined ||
        (leaderName !== null && !this.held.has(shard) && this.probeHealthyPrimary(leaderName));
      const primary: Endpoint | null = leaderOk && leaderName ? endpoint(this.node(leaderName)) : null;
      const replicas = this.shardNodes(shard)
        .filter((n) => n.name !== leaderName)
        .filter((n) => {
          const last = this.trackers.get(n.name)!.last;
          return (
            last?.ok === true &&
            last.inRecovery === true &&
            last.streaming &&
            !this.cluster.needsRejoin(n) &&
            this.cluster.upstreamOf(n)?.port === (leaderName ? this.node(leaderName).port : -1)
          );
        })
        .map(endpoint);
      return { primary, replicas };
    });
    // Release a hold once a healthy leader is seen again.
    for (const shard of [...this.held]) {
      const st = this.shards[shard]!;
      if (forced?.has(shard)) this.held.delete(shard);
      else if (st.leader && this.probeHealthyPrimary(st.leader.node) && !this.requests.has(shard)) {
        this.held.delete(shard);
      }
    }
    const key = JSON.stringify(shards);
    if (key === this.published) return;
    const primaries = (t: Pick<Topology, 'shards'>) =>
      JSON.stringify(t.shards.map((s) => s.primary?.name ?? null));
    // The proxy's epoch moves at every change of a primary (including "none" during a hold).
    if (primaries({ shards }) !== primaries(this.view.current())) this.topologyEpoch++;
    this.published = key;
    this.view.publish({ epoch: this.topologyEpoch, shards });
  }

  private probeHealthyPrimary(node: string): boolean {
    const last = this.trackers.get(node)?.last;
    return last?.ok === true && last.inRecovery === false;
  }

  // ---------------------------------------------------------------- helpers

  private record(e: Omit<HaEvent, 'at'>): Promise<HaEvent> {
    return this.events.record(e);
  }

  private shardNodes(shard: number): NodeRef[] {
    return this.cluster.nodes().filter((n) => n.shard === shard);
  }

  private node(name: string): NodeRef {
    const n = this.cluster.nodes().find((x) => x.name === name);
    if (!n) throw new HaError(ErrorCodes.NODE_NOT_FOUND, `no node named ${name}`);
    return n;
  }
}

function endpoint(n: NodeRef): Endpoint {
  return { name: n.name, host: n.host, port: n.port };
}

function sameHost(a: string, b: string): boolean {
  const local = (h: string) => h === 'localhost' || h === '127.0.0.1' || h === '::1';
  return a === b || (local(a) && local(b));
}

function isStoreError(e: unknown): boolean {
  return e instanceof PgscaleError && e.code === ErrorCodes.STORE_UNAVAILABLE;
}

function ms(t0: number): number {
  return Math.round(performance.now() - t0);
}

function sleep(msec: number): Promise<void> {
  return new Promise((r) => setTimeout(r, msec));
}

function describe(a: Action): string {
  switch (a.kind) {
    case 'failover':
      return `failover ${a.from ?? '?'} → ${a.to}: ${a.reason}`;
    case 'switchover':
      return `switchover ${a.from} → ${a.to}`;
    case 'none':
    case 'refuse':
      return a.reason;
    default:
      return `${a.kind} ${a.node}: ${a.reason}`;
  }
}
