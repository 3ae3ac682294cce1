/**
 * High availability inside the controller: the decide loop. Every `loop_wait` it takes one
 * immutable snapshot per group (the store's leader key and epoch, each node's data directory and
 * probe), asks decide() for one action, logs it in one line and carries it out. It renews the
 * leader lease while the leader is a healthy primary, publishes the topology the proxy routes by
 * (no primary while a group has none it can vouch for: the proxy then holds new transactions),
 * and records every event in the store's history.
 *
 * The parts, each in its own module: the leader key and our lease (leader-lease.ts, the one
 * compare-and-set), probes and member views (member-watch.ts), failover and switchover
 * (promotion.ts), the published topology (topology-publisher.ts), the event history
 * (ha-history.ts) and the HTTP routes (ha-routes.ts). This module is the loop that drives them.
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
import { formatLsn } from '../protocol/lsn.js';
import type { LoadedConfig, NodeRef } from '../config/load.js';
import type { HaConfig } from '../config/schema.js';
import { ErrorCodes, PgscaleError, errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import type { TopologyView } from '../topology/topology.js';
import type { Action, Leader, Request, GroupSnapshot } from './decide.js';
import { decideAround, healthyPrimary } from './decide.js';
import type { HaControl, HaEvent, RequestOutcome, RouteResult } from './ha-routes.js';
import { HISTORY_LIMIT, handleHaRoute } from './ha-routes.js';
import { HaHistory, lastFailovers } from './ha-history.js';
import type { HaMetricsSnapshot } from './ha-metrics.js';
import { HA_KEYS, LeaderLease } from './leader-lease.js';
import { MemberWatch } from './member-watch.js';
import type { Probes } from './member-watch.js';
import { actionKey, backingOff, noteFailure } from './action-backoff.js';
import { carryOut } from './ha-actions.js';
import type { ActionContext } from './ha-actions.js';
import type { GroupState } from './group-state.js';
import { HaError, newGroupState } from './group-state.js';
import type { LeaseId, StateStore } from './store.js';
import { TopologyPublisher } from './topology-publisher.js';
import { LocalNodeOps } from './node-ops.js';
import type { NodeOps } from './node-ops.js';

export { HaError } from './group-state.js';
export type { HaEvent } from './ha-routes.js';

interface PendingRequest {
  request: Request;
  resolve: (r: RequestOutcome) => void;
  since: number;
}

export interface HaServiceOptions {
  /**
   * How nodes are reached (default: all local). Given by `pgscale agent`, where nodes on other
   * hosts are reached through their agents; each agent then stops its own primaries when its
   * session ends, so this service does not (leaseLost).
   */
  ops?: NodeOps;
  /** The lease leader keys go under (the deciding agent's session); default: the service's own. */
  session?: () => LeaseId | null;
  /** Run at the start of every cycle, before the probes (an agent reads its peers' reports). */
  beforeCycle?: () => Promise<void>;
  /** Several hosts: decide.ts's hostGoneGraceMs, now. */
  hostGoneGraceMs?: () => number;
}

export class HaService implements HaControl, ActionContext {
  readonly name = 'ha';
  readonly ops: NodeOps;
  private readonly agentMode: boolean;
  private readonly beforeCycle: (() => Promise<void>) | null;
  private readonly hostGoneGraceMs: (() => number) | null;
  private readonly groups: GroupState[];
  private readonly requests = new Map<number, PendingRequest>();
  /** Long actions (rejoin, standby restart) running in the background, by node. */
  private readonly busy = new Map<string, Promise<void>>();
  readonly members: MemberWatch;
  readonly leases: LeaderLease;
  readonly publisher: TopologyPublisher;
  private storeRef: StateStore | null = null;
  private timer: NodeJS.Timeout | null = null;
  private cycle: Promise<void> | null = null;
  private stopped = false;
  private lastStoreOk = performance.now();
  private storeDown = false;
  private paused = false;
  /** Bumped by setPaused: a cycle's read of the key that began before it must not undo it. */
  private pausedWrites = 0;
  private readonly events = new HaHistory(() => this.store);
  private cycles = 0;
  private lastCycleAt: string | null = null;

  constructor(
    loaded: LoadedConfig,
    readonly cluster: Cluster,
    private readonly openStore: () => Promise<StateStore>,
    view: TopologyView,
    readonly log: Logger,
    opts: HaServiceOptions = {},
  ) {
    this.ops = opts.ops ?? new LocalNodeOps(cluster);
    this.agentMode = opts.ops !== undefined;
    this.groups = loaded.config.groups.map(() => newGroupState());
    // A probe may take a third of unreachable_timeout: a busy server is slow, not dead.
    this.members = new MemberWatch(
      cluster,
      this.ops,
      Math.max(1000, (this.cfg.unreachable_timeout * 1000) / 3),
    );
    this.leases = new LeaderLease(() => this.store, this.cfg.ttl * 1000, log, opts.session);
    this.beforeCycle = opts.beforeCycle ?? null;
    this.hostGoneGraceMs = opts.hostGoneGraceMs ?? null;
    const groups = this.groups;
    this.publisher = new TopologyPublisher(view, cluster, {
      // Read at every publication: add-group and remove-group change it while HA runs.
      get groupCount() {
        return groups.length;
      },
      leaderOf: (group) => this.groups[group]!.leader?.node ?? null,
      lastProbe: (node) => this.members.lastProbe(node),
      requestPending: (group) => this.requests.has(group),
      facts: (n) => this.ops.facts(n),
    });
  }

  /** The ha section as the cluster runs it now: a reload's new values hold from the next cycle. */
  get cfg(): HaConfig {
    return this.cluster.config.ha;
  }

  private get loopMs(): number {
    return this.cfg.loop_wait * 1000;
  }

  // ---------------------------------------------------------------- service

  /** The state store while high availability runs (others keep their keys there too: the shard catalog). */
  get stateStore(): StateStore | null {
    return this.storeRef;
  }

  private get store(): StateStore {
    if (!this.storeRef) throw new HaError(ErrorCodes.INTERNAL, 'high availability has not started');
    return this.storeRef;
  }

  async start(): Promise<void> {
    this.storeRef = await this.openStore();
    this.paused = (await this.store.get(HA_KEYS.paused).catch(() => null))?.value === 'true';
    const last = lastFailovers(await this.history().catch(() => []), this.groups.length);
    for (const [group, st] of this.groups.entries()) st.lastFailoverAt = last[group] ?? null;
    // One cycle before the proxy starts, so that it begins with a topology it can trust.
    for (let i = 0; i < 3; i++) {
      await this.runCycle();
      if (this.groups.every((s) => s.leader !== null)) break;
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
    this.members.close();
    await this.storeRef?.close().catch(() => undefined);
    this.storeRef = null;
  }

  /**
   * The controller re-read the nodes (add-group, remove-group, add-replica, remove-replica): a
   * cycle now takes them in, and, for a new group, up to two more until it has a leader, so the
   * topology the proxy and the sharding service follow names its primary when this resolves.
   */
  async reload(): Promise<string[]> {
    await this.cycle?.catch(() => undefined);
    for (let i = 0; i < 3 && !this.stopped && this.storeRef; i++) {
      await this.runCycle();
      if (this.groups.every((s) => s.leader !== null)) break;
    }
    return [];
  }

  /**
   * Follows the number of groups in the cluster's config (add-group, remove-group): a new group
   * gets its state (its first cycle takes its leader key); a removed one, always the last, is let
   * go: a request on it is refused, and its leader and epoch keys are deleted, so that a group
   * added later at the same position starts afresh.
   */
  private async syncGroups(): Promise<void> {
    const want = this.cluster.config.groups.length;
    while (this.groups.length < want) {
      this.groups.push(newGroupState());
      this.log.info({ group: this.groups.length - 1 }, `group ${this.groups.length - 1}: taken in`);
    }
    while (this.groups.length > want) {
      const group = this.groups.length - 1;
      this.finishRequest(group, { ok: false, reason: `group ${group} was removed` });
      this.groups.pop();
      for (const key of [HA_KEYS.leader(group), HA_KEYS.epoch(group)]) {
        const kv = await this.store.get(key).catch(() => null);
        if (kv) await this.store.compareAndDelete(key, kv.revision).catch(() => false);
      }
      this.log.info({ group }, `group ${group}: removed, its leader key deleted`);
    }
  }

  status(): unknown {
    return {
      store: this.storeRef?.describe ?? null,
      store_reachable: !this.storeDown,
      paused: this.paused,
      cycles: this.cycles,
      last_cycle_at: this.lastCycleAt,
      groups: this.groups.map((s, group) => ({
        group,
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
      groups: this.groups.map((s, group) => ({
        group,
        nodes: this.nodesOf(group),
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

  get groupCount(): number {
    return this.groups.length;
  }

  nodesOf(group: number): string[] {
    return this.groupNodes(group).map((n) => n.name);
  }

  /** Queues a switchover or failover for the next cycle; resolves when it is done or refused. */
  request(group: number, request: Request, timeoutMs = 120_000): Promise<RequestOutcome> {
    if (group < 0 || group >= this.groups.length) {
      return Promise.resolve({ ok: false, reason: `there is no group ${group}` });
    }
    if (this.requests.has(group)) {
      return Promise.resolve({
        ok: false,
        reason: `a ${this.requests.get(group)!.request.kind} of group ${group} is already in progress`,
      });
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.requests.get(group)?.resolve === done) this.requests.delete(group);
        resolve({ ok: false, reason: `not done within ${timeoutMs / 1000} s` });
      }, timeoutMs);
      const done = (r: RequestOutcome) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.requests.set(group, { request, resolve: done, since: performance.now() });
      this.kick();
    });
  }

  async setPaused(paused: boolean): Promise<void> {
    if (paused) await this.store.put(HA_KEYS.paused, 'true');
    else {
      const kv = await this.store.get(HA_KEYS.paused);
      if (kv) await this.store.compareAndDelete(HA_KEYS.paused, kv.revision);
    }
    this.pausedWrites++;
    this.paused = paused;
    await this.record({ group: -1, event: paused ? 'ha_paused' : 'ha_resumed' });
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
    if (this.beforeCycle) {
      try {
        await this.beforeCycle();
      } catch (e) {
        // Without the reports nothing about other hosts can be known: no decision this cycle.
        this.onStoreError(e);
        return;
      }
    }
    this.members.sync();
    await this.syncGroups();
    await this.readPaused();
    this.cycles++;
    this.lastCycleAt = new Date().toISOString();
    // Busy before the probes: a background start or rejoin that ends while they run must not
    // look like a stopped node to this cycle (it would be started, or rewound, a second time).
    const busyAtProbe = new Set(this.busy.keys());
    const probes = await this.members.probeAll();
    let storeOk = true;
    for (let group = 0; group < this.groups.length; group++) {
      if (this.stopped) return;
      try {
        await this.readGroup(group);
      } catch (e) {
        storeOk = false;
        this.onStoreError(e);
        continue;
      }
      const snap = this.snapshot(group, probes, busyAtProbe);
      const action = this.decideAroundBackoff(group, snap);
      if (action === null) continue;
      try {
        await carryOut(this, group, snap, action);
        // Background actions (start_standby, rejoin) clear their own failure when they succeed.
        if (action.kind !== 'start_standby' && action.kind !== 'rejoin') {
          this.groups[group]!.failures.delete(actionKey(action));
        }
      } catch (e) {
        if (isStoreError(e)) {
          storeOk = false;
          this.onStoreError(e);
        } else {
          const msg = errorMessage(e);
          if (this.noteFailure(group, actionKey(action), msg)) {
            this.log.error({ err: e, group, action: action.kind }, `${action.kind} failed: ${msg}`);
            await this.record({ group, event: `${action.kind}_failed`, detail: msg }).catch(() => undefined);
          }
          this.finishRequest(group, { ok: false, reason: `${action.kind} failed: ${msg}` });
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
    this.publisher.publish();
  }

  /**
   * The `paused` key, one get per cycle: with several hosts `pgscale pause-ha` writes it from
   * anywhere (src/ha/store-requests.ts), not through this service. A failed read keeps what was
   * known (the group reads that follow fail too, and nothing is decided on them).
   */
  private async readPaused(): Promise<void> {
    const writes = this.pausedWrites;
    const kv = await this.store.get(HA_KEYS.paused).catch(() => undefined);
    if (kv === undefined || writes !== this.pausedWrites) return;
    const paused = kv?.value === 'true';
    if (paused !== this.paused)
      this.log.info(
        paused
          ? 'automatic failover paused (seen in the store)'
          : 'automatic failover resumed (seen in the store)',
      );
    this.paused = paused;
  }

  /**
   * decide(), except that an action that failed a moment ago, and that nothing asks for now,
   * waits out its back-off rather than fail (and write to the store) every cycle; the other
   * members go on being looked after meanwhile (see decideAround).
   */
  private decideAroundBackoff(group: number, snap: GroupSnapshot): Action | null {
    const failures = this.groups[group]!.failures;
    const now = performance.now();
    return decideAround(snap, (a) => !snap.request && backingOff(failures, a, now));
  }

  /**
   * Counts a failure of an action and sets its back-off; true when it is news (not the action
   * that failed last time), which alone is logged as an error and written to history:
   * a group left without a primary must not write the same failure every cycle.
   */
  private noteFailure(group: number, key: string, message: string): boolean {
    const { news, count, delayMs } = noteFailure(this.groups[group]!.failures, key, message, this.loopMs);
    if (!news) {
      this.log.warn(
        { group, action: key, failures: count },
        `${key} failed again (${count} times in a row), next try in ${Math.round(delayMs / 1000)} s: ${message}`,
      );
    }
    return news;
  }

  private async readGroup(group: number): Promise<void> {
    const st = this.groups[group]!;
    const { leaderKv, epoch } = await this.leases.read(group);
    st.leaderKv = leaderKv;
    st.leader = leaderKv ? (JSON.parse(leaderKv.value) as Leader) : null;
    st.lastEpoch = Math.max(epoch?.epoch ?? 0, st.leader?.epoch ?? 0, st.lastEpoch);
    st.lastLeader = st.leader?.node ?? epoch?.node ?? st.lastLeader;
  }

  snapshot(group: number, probes: Probes, busyAtProbe: ReadonlySet<string> = new Set()): GroupSnapshot {
    const st = this.groups[group]!;
    const members = this.members.members(
      group,
      probes,
      st.leader?.node ?? null,
      (node) => this.busy.has(node) || busyAtProbe.has(node),
    );
    const leader = st.leader ? members.find((m) => m.name === st.leader!.node) : undefined;
    if (leader && healthyPrimary(leader) && leader.currentLsn !== null) st.lastPrimaryLsn = leader.currentLsn;
    const mode = this.cluster.config.replication.synchronous;
    return {
      group,
      leader: st.leader,
      lastEpoch: st.lastEpoch,
      lastLeader: st.lastLeader,
      lastPrimaryLsn: st.lastPrimaryLsn,
      paused: this.paused,
      request: this.requests.get(group)?.request ?? null,
      members,
      settings: {
        primaryDownGraceMs: this.cfg.primary_down_grace * 1000,
        unreachableTimeoutMs: this.cfg.unreachable_timeout * 1000,
        maximumLagOnFailover: this.cfg.maximum_lag_on_failover,
        rejoin: this.cfg.rejoin,
        syncQuorum: mode === 'off' ? null : mode === 'on' ? 1 : Number(mode.slice('quorum '.length)),
        notStreamingRejoinMs: 15_000,
        hostGoneGraceMs: this.hostGoneGraceMs?.() ?? 0,
      },
    };
  }

  // ---------------------------------------------------------------- actions

  /** Runs a long action beside the loop (the node counts as busy until it ends). */
  background(group: number, node: string, what: string, fn: () => Promise<void>): void {
    const task = fn()
      .then(() => {
        this.groups[group]!.failures.delete(`${what}:${node}`);
      })
      .catch(async (e: unknown) => {
        if (!this.noteFailure(group, `${what}:${node}`, errorMessage(e))) return;
        this.log.error({ err: e, group, node }, `${what} of ${node} failed: ${errorMessage(e)}`);
        await this.record({ group, event: `${what}_failed`, node, detail: errorMessage(e) }).catch(
          () => undefined,
        );
      })
      .finally(() => this.busy.delete(node));
    this.busy.set(node, task);
  }

  /**
   * Runs `fn` with the node counted as busy (a restart or reinit asked for by the operator):
   * high availability neither starts nor rejoins it meanwhile. What high availability is doing
   * to the node already (a start, a rejoin) ends first.
   */
  async whileBusy<T>(node: string, fn: () => Promise<T>): Promise<T> {
    // A cycle that probed the node before it was busy must not act on that probe.
    for (;;) {
      await this.cycle?.catch(() => undefined);
      const task = this.busy.get(node);
      if (!task) break;
      await task;
    }
    let release: () => void = () => undefined;
    this.busy.set(node, new Promise<void>((r) => (release = r)));
    try {
      return await fn();
    } finally {
      this.busy.delete(node);
      release();
    }
  }

  // ---------------------------------------------------------------- for promotion.ts and ha-actions.ts

  group(group: number): GroupState {
    return this.groups[group]!;
  }

  requestedTarget(group: number): string | null {
    return this.requests.get(group)?.request.to ?? null;
  }

  finishRequest(group: number, r: RequestOutcome): void {
    const p = this.requests.get(group);
    if (!p) return;
    this.requests.delete(group);
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
    if (this.agentMode) return;
    if (performance.now() - this.lastStoreOk < this.cfg.ttl * 1000) return;
    for (let group = 0; group < this.groups.length; group++) {
      const st = this.groups[group]!;
      const node = st.leader?.node;
      if (!node) continue;
      const n = this.node(node);
      if (!this.ops.facts(n)?.running) continue;
      this.publisher.hold(group);
      this.log.error(
        { group, node },
        `group ${group}: no lease for ${this.cfg.ttl} s (state store unreachable); stopping primary ${node}`,
      );
      const stopped = await this.ops.stopNode(n, 'fast').then(
        () => 'stopped',
        (e: unknown) => `stop failed: ${errorMessage(e)}`,
      );
      st.leader = null;
      st.leaderKv = null;
      // The store is what cannot be reached: the event waits for it.
      this.events.defer({
        group,
        event: 'primary_stopped',
        node,
        detail: `no lease for ${this.cfg.ttl} s (state store unreachable); ${stopped}`,
      });
    }
  }

  // ---------------------------------------------------------------- helpers

  record(e: Omit<HaEvent, 'at'>): Promise<HaEvent> {
    return this.events.record(e);
  }

  private groupNodes(group: number): NodeRef[] {
    return this.cluster.nodes().filter((n) => n.group === group);
  }

  node(name: string): NodeRef {
    const n = this.cluster.nodes().find((x) => x.name === name);
    if (!n) throw new HaError(ErrorCodes.NODE_NOT_FOUND, `no node named ${name}`);
    return n;
  }
}

function isStoreError(e: unknown): boolean {
  return e instanceof PgscaleError && e.code === ErrorCodes.STORE_UNAVAILABLE;
}
