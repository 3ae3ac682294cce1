/**
 * `pgscale agent`: one per database host, all around one etcd (several hosts). An agent runs the
 * PostgreSQL nodes its host holds (the config's nodes whose `host` is this host): it provisions
 * them (the group's first primary with initdb; a standby cloned from the current primary over the
 * network), reports their facts, runs what the decider asks of them, and stops its primaries when
 * its session in etcd can no longer vouch for them (src/ha/agent-session.ts). One agent at a time
 * is the decider (the `decider` key, under its session): it runs the same decide loop as the
 * controller on one host (src/ha/ha-service.ts), with nodes elsewhere reached through their
 * agents (src/ha/agent-rpc.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from '../cluster/cluster.js';
import { isProvisioned } from '../cluster/instance.js';
import { readSecrets } from '../cluster/secrets.js';
import { withClient } from '../cluster/sql.js';
import type { LoadedConfig, NodeRef } from '../config/load.js';
import { ErrorCodes, PgscaleError, errorMessage } from '../errors.js';
import { AGENT_KEYS, CommandRunner, MemberReports, RemoteNodeOps, RoutedNodeOps } from '../ha/agent-rpc.js';
import { AgentSession } from '../ha/agent-session.js';
import { HaService } from '../ha/ha-service.js';
import { HA_KEYS } from '../ha/leader-lease.js';
import { LocalNodeOps, ProvisioningAware } from '../ha/node-ops.js';
import { openStore } from '../ha/open-store.js';
import { CLAIM_KEY, claimStore } from '../ha/store-claim.js';
import { mergeStoredNodes, readStoredNodes } from '../ha/store-nodes.js';
import { RequestDesk } from '../ha/store-requests.js';
import type { StateStore } from '../ha/store.js';
import type { Logger } from '../obs/logger.js';
import { TopologyWriter } from '../ha/store-topology.js';
import { TopologyView } from '../topology/topology.js';
import { hostWatchdog } from '../ha/watchdog.js';
import { claimant } from './store-keys.js';
import { dropLocalNode, reportProvisioning } from './agent-nodes.js';
import { readAgentFile, reloadLocalNodes } from './agent-reload.js';

export interface AgentOptions {
  /** This host's name as the config's nodes spell it. */
  readonly host: string;
  /** Period of the agent's loop (default ha.loop_wait). */
  readonly loopMs?: number;
  /** Start with no node on this host yet: it waits for `add-replica --host` or `add-group`. */
  readonly spare?: boolean;
}

/** The store as HA sees it when the agent owns it: HA's stop must not close it. */
function borrowed(store: StateStore): StateStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'close') return () => Promise.resolve();
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

export class Agent {
  private store: StateStore | null = null;
  private session: AgentSession | null = null;
  private runner: CommandRunner | null = null;
  private ha: HaService | null = null;
  private remote: RemoteNodeOps | null = null;
  private topology: TopologyWriter | null = null;
  /** The decider's answers to switchover/failover requests from the CLI (store-requests.ts). */
  private desk: RequestDesk | null = null;
  private haStarting: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private tick: Promise<void> | null = null;
  private stopped = false;
  private readonly provisioning = new Map<string, Promise<void>>();
  /** Local primaries whose synchronous_standby_names this agent has set. */
  private readonly syncSet = new Set<string>();
  /** The config as its file says; the nodes recorded in the store are added to it (store-nodes.ts). */
  private fileLoaded: LoadedConfig | null = null;
  private storedKey = '';
  readonly view = new TopologyView();

  constructor(
    readonly cluster: Cluster,
    private readonly o: AgentOptions,
    private readonly log: Logger,
  ) {}

  get localNodes(): NodeRef[] {
    return this.cluster.nodes().filter((n) => n.host === this.o.host);
  }

  private node(name: string): NodeRef {
    const n = this.cluster.nodes().find((x) => x.name === name);
    if (!n) throw new PgscaleError(ErrorCodes.NODE_NOT_FOUND, `no node named ${name}`);
    return n;
  }

  get isDecider(): boolean {
    return this.ha !== null;
  }

  async start(): Promise<void> {
    const cfg = this.cluster.config;
    if (cfg.ha.store !== 'etcd')
      throw new PgscaleError(
        ErrorCodes.CONFIG_INVALID,
        `pgscale agent needs ha.store: etcd in ${this.cluster.loaded.file} (several hosts share one etcd)`,
      );
    this.fileLoaded = this.cluster.loaded;
    const noNodeHere = (why: string) =>
      new PgscaleError(
        ErrorCodes.CONFIG_INVALID,
        `no node of ${this.cluster.loaded.file} is on host "${this.o.host}" (the nodes' hosts: ${[
          ...new Set(this.cluster.nodes().map((n) => n.host)),
        ].join(', ')})${why}`,
      );
    // Checked before anything is claimed: `required` without a working device stops here.
    const watchdog = hostWatchdog(cfg.ha.watchdog, cfg.ha.ttl * 1000, this.log);
    // Nodes added while the cluster runs (add-replica --host, add-group) are in the store.
    const unanswered = (e: unknown) =>
      this.localNodes.length === 0 && !this.o.spare
        ? noNodeHere(`, and etcd, where added nodes are recorded, did not answer: ${errorMessage(e)}`)
        : e;
    const store = await openStore(this.cluster.loaded, this.log).catch((e: unknown) => {
      throw unanswered(e);
    });
    this.store = store;
    try {
      await this.followStoredNodes(store).catch((e: unknown) => {
        throw unanswered(e);
      });
      if (this.localNodes.length === 0 && !this.o.spare)
        throw noNodeHere(
          ', nor in the state store; an agent for nodes still to come (add-replica --host, add-group) runs with --spare',
        );
      await this.joinCluster(store);
    } catch (e) {
      await store.close().catch(() => undefined);
      this.store = null;
      throw e;
    }
    // A node being created or cloned here is not there yet, for the decider as for its commands.
    const local = new ProvisioningAware(new LocalNodeOps(this.cluster), (n) => this.provisioning.has(n.name));
    const info = {
      host: this.o.host,
      pid: process.pid,
      started_at: new Date().toISOString(),
      version: process.env.npm_package_version ?? 'dev',
    };
    const ttlMs = cfg.ha.ttl * 1000;
    this.session = new AgentSession(
      store,
      local,
      () => this.localNodes,
      { host: this.o.host, ttlMs, info, watchdog },
      this.log,
    );
    this.runner = new CommandRunner(
      () => store,
      this.o.host,
      local,
      (n) => this.node(n),
      () => this.session?.lease ?? null,
      this.log,
    );
    await this.session.start();
    await this.step();
    this.schedule();
    this.log.info(
      { host: this.o.host, nodes: this.localNodes.map((n) => n.name), store: store.describe },
      `agent of host ${this.o.host} running (nodes: ${this.localNodes.map((n) => n.name).join(', ')})`,
    );
  }

  /**
   * The first agent claims the cluster's keys for its data directory's identity; the others
   * adopt that identity (a new data directory) or must already have it, and need the cluster's
   * secrets copied from the first host.
   */
  private async joinCluster(store: StateStore): Promise<void> {
    const holder = await store.get(CLAIM_KEY);
    const mine = this.cluster.identity();
    if (holder === null) {
      if (readSecrets(this.cluster.dataDir) === null && mine !== null)
        throw new PgscaleError(ErrorCodes.CONFIG_INVALID, `${this.cluster.dataDir} has no secrets.json`);
      this.cluster.prepareLocal();
      const me = claimant(this.cluster, store.describe);
      await claimStore(store, { ...me, instance: this.cluster.identity()!.id });
      return;
    }
    const held = JSON.parse(holder.value) as { instance?: string };
    if (mine === null && typeof held.instance === 'string') {
      if (readSecrets(this.cluster.dataDir) === null)
        throw new PgscaleError(
          ErrorCodes.CONFIG_INVALID,
          `${join(this.cluster.dataDir, 'secrets.json')} is missing: copy it (mode 0600) from the data directory of the first host of cluster "${this.cluster.config.cluster.name}", whose agent created the cluster's passwords`,
        );
      writeFileSync(
        join(this.cluster.dataDir, 'cluster.json'),
        JSON.stringify(
          { id: held.instance, name: this.cluster.config.cluster.name, created_at: new Date().toISOString() },
          null,
          2,
        ) + '\n',
      );
    }
    const me = claimant(this.cluster, store.describe);
    await claimStore(store, { ...me, instance: this.cluster.identity()!.id });
    this.cluster.prepareLocal();
  }

  private schedule(): void {
    if (this.stopped) return;
    const ms = this.o.loopMs ?? this.cluster.config.ha.loop_wait * 1000;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.tick = this.step()
        .catch((e: unknown) => this.log.error({ err: e }, `agent step failed: ${errorMessage(e)}`))
        .finally(() => {
          this.tick = null;
          this.schedule();
        });
    }, ms);
  }

  /** One turn of the loop: commands, the decider's role, provisioning (the session has its own). */
  private async step(): Promise<void> {
    const store = this.store!;
    await this.followStoredNodes(store).catch((e: unknown) =>
      this.log.warn(`the nodes recorded in the state store could not be read: ${errorMessage(e)}`),
    );
    await this.runner!.poll().catch(() => undefined);
    await this.elect(store).catch(() => undefined);
    this.provision(store);
    await this.syncNames().catch(() => undefined);
    if (this.ha) await this.topology?.flush();
  }

  /**
   * Synchronous replication: a primary created here names its standbys in
   * synchronous_standby_names once one of them streams (before, every commit would wait). A
   * promoted primary gets them from the promotion itself; this only completes a fresh start.
   */
  private async syncNames(): Promise<void> {
    if (this.cluster.config.replication.synchronous === 'off') return;
    for (const n of this.localNodes) {
      const facts = new LocalNodeOps(this.cluster).facts(n);
      if (!facts.running || facts.standbyDir || this.provisioning.has(n.name)) {
        this.syncSet.delete(n.name);
        continue;
      }
      if (this.syncSet.has(n.name)) continue;
      const names = this.cluster
        .nodes()
        .filter((x) => x.group === n.group && x.name !== n.name)
        .map((x) => x.name);
      const streaming = await withClient(this.cluster.target(n), async (c) => {
        const r = await c.query<{ n: number }>(
          // A standby being cloned streams under its name too (pg_basebackup's WAL stream, beside
          // its connection in state 'backup'): that one is not a standby yet.
          `SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name = ANY($1)
             AND application_name NOT IN (SELECT application_name FROM pg_stat_replication WHERE state = 'backup')`,
          [names],
        );
        return r.rows[0]!.n;
      });
      if (streaming === 0) continue;
      await this.cluster.refreshPrimaryConf(n);
      this.syncSet.add(n.name);
      this.log.info({ node: n.name }, `${n.name}: synchronous_standby_names set (a standby streams)`);
    }
  }

  /**
   * Takes in the nodes recorded in the store (add-replica --host, add-group): this host's are
   * then provisioned, the decider supervises them all, a local primary of their group names them
   * in synchronous_standby_names. A local node whose record went (an add the CLI gave up on) is
   * stopped, its slot on the group's leader dropped and its data directory deleted.
   */
  private async followStoredNodes(store: StateStore): Promise<void> {
    const stored = await readStoredNodes(store);
    const key = JSON.stringify(stored);
    if (key === this.storedKey) return;
    this.storedKey = key;
    let merged: LoadedConfig;
    try {
      merged = mergeStoredNodes(this.fileLoaded!, stored);
    } catch (e) {
      this.log.error(`the nodes recorded in the state store are not taken in: ${errorMessage(e)}`);
      return;
    }
    const before = this.cluster.nodes();
    this.cluster.replaceConfig(merged);
    const after = this.cluster.nodes();
    const added = after.filter((n) => !before.some((b) => b.name === n.name));
    const gone = before.filter((b) => !after.some((n) => n.name === b.name));
    if (added.length === 0 && gone.length === 0) return;
    this.log.info(
      { added: added.map((n) => n.name), removed: gone.map((n) => n.name) },
      `nodes recorded in the state store: ${[...added.map((n) => `+${n.name}@${n.host}`), ...gone.map((n) => `-${n.name}`)].join(' ')}`,
    );
    for (const n of [...added, ...gone])
      for (const p of this.localNodes) if (p.group === n.group) this.syncSet.delete(p.name);
    for (const n of gone.filter((x) => x.host === this.o.host)) {
      // In the background, as a provisioning: the same name added again waits for it.
      const task = (this.provisioning.get(n.name) ?? Promise.resolve())
        .then(() =>
          dropLocalNode(this.cluster, store, n, {
            host: this.o.host,
            lease: () => this.session?.lease ?? null,
            waitMs: (this.cluster.config.ha.ttl + this.cluster.config.ha.loop_wait * 2) * 1000,
            log: this.log,
          }),
        )
        .catch((e: unknown) =>
          this.log.error({ node: n.name }, `removing ${n.name} failed: ${errorMessage(e)}`),
        )
        .finally(() => this.provisioning.delete(n.name));
      this.provisioning.set(n.name, task);
    }
    this.session?.invalidate();
  }

  /** Takes the decider's role when nobody has it; lets it go when the key is no longer ours. */
  private async elect(store: StateStore): Promise<void> {
    const lease = this.session!.lease;
    const kv = await store.get(AGENT_KEYS.decider);
    const ours = kv !== null && lease !== null && kv.lease === lease;
    if (this.ha && !ours) {
      this.log.warn(`agent ${this.o.host}: no longer the decider`);
      const ha = this.ha;
      this.ha = null;
      this.desk?.stop();
      this.remote?.close();
      this.topology?.close();
      this.topology = null;
      await ha.stop().catch(() => undefined);
      return;
    }
    if (this.ha || this.haStarting || lease === null) return;
    if (kv !== null && !ours) return;
    if (kv === null) {
      const rev = await store.compareAndSet(AGENT_KEYS.decider, 0, JSON.stringify({ host: this.o.host }), {
        lease,
      });
      if (rev === null) return;
    }
    this.haStarting = this.startHa(store).finally(() => (this.haStarting = null));
  }

  private async startHa(store: StateStore): Promise<void> {
    const reports = new MemberReports(() => store);
    const remote = new RemoteNodeOps(
      () => store,
      reports,
      () => this.session?.lease ?? null,
      (n) => this.node(n),
    );
    this.remote = remote;
    const ops = new RoutedNodeOps(
      new ProvisioningAware(
        new LocalNodeOps(this.cluster),
        (n) => this.provisioning.has(n.name),
        (n) => this.session?.isSelfStopped(n.name) ?? false,
      ),
      remote,
      (n) => n.host === this.o.host,
    );
    const ha = new HaService(
      this.cluster.loaded,
      this.cluster,
      () => Promise.resolve(borrowed(store)),
      this.view,
      this.log.child({ component: 'ha' }),
      {
        ops,
        session: () => this.session?.lease ?? null,
        beforeCycle: () => reports.refresh(),
        // A young session means an etcd outage (or a restart) here: the other agents may be
        // opening theirs too, so a host is not taken for gone before a TTL.
        hostGoneGraceMs: () =>
          (this.session?.ageMs ?? 0) < this.cluster.config.ha.ttl * 1000
            ? this.cluster.config.ha.ttl * 1000
            : 0,
      },
    );
    this.log.info(`agent ${this.o.host}: the decider now (runs the decide loop for every group)`);
    // What the decide loop publishes goes to the store, where every proxy follows it.
    this.topology?.close();
    this.topology = new TopologyWriter(() => this.store, this.view, this.log);
    try {
      await ha.start();
      this.ha = ha;
      this.desk = new RequestDesk(
        () => store,
        ha,
        this.o.host,
        () => this.session?.lease ?? null,
        this.log,
      ).start();
    } catch (e) {
      this.log.error(`agent ${this.o.host}: the decide loop did not start: ${errorMessage(e)}`);
      await ha.stop().catch(() => undefined);
      const kv = await store.get(AGENT_KEYS.decider).catch(() => null);
      if (kv) await store.compareAndDelete(kv.key, kv.revision).catch(() => false);
    }
  }

  /**
   * Local nodes with no data directory, each once at a time in the background: a group that never
   * had a leader gets its first node created here (initdb); any other waits for its group's
   * leader and is cloned from it.
   */
  private provision(store: StateStore): void {
    for (const n of this.localNodes) {
      if (this.provisioning.has(n.name) || isProvisioned(this.cluster.paths(n.name).pgdata)) continue;
      const task = (async () => {
        const epoch = await store.get(HA_KEYS.epoch(n.group));
        const leaderKv = await store.get(HA_KEYS.leader(n.group));
        const leader = leaderKv ? (JSON.parse(leaderKv.value) as { node: string }).node : null;
        const first = this.cluster.nodes().find((x) => x.group === n.group)!;
        if (epoch === null && leader === null) {
          if (first.name !== n.name) return; // the group's first node is created first
          this.log.info(
            { node: n.name },
            `agent ${this.o.host}: creating ${n.name}, the first primary of group ${n.group}`,
          );
          await reportProvisioning(store, this.session?.lease ?? null, this.o.host, n.name, {
            state: 'provisioning',
          });
          await this.cluster.upLocalNode(n, null);
          await reportProvisioning(store, this.session?.lease ?? null, this.o.host, n.name, {
            state: 'done',
          });
          return;
        }
        if (leader === null || leader === n.name) return;
        this.log.info({ node: n.name }, `agent ${this.o.host}: cloning ${n.name} from ${leader}`);
        await reportProvisioning(store, this.session?.lease ?? null, this.o.host, n.name, {
          state: 'provisioning',
        });
        await this.cluster.upLocalNode(n, this.node(leader));
        await reportProvisioning(store, this.session?.lease ?? null, this.o.host, n.name, { state: 'done' });
      })()
        .catch(async (e: unknown) => {
          this.log.error({ node: n.name }, `provisioning ${n.name} failed: ${errorMessage(e)}`);
          await reportProvisioning(store, this.session?.lease ?? null, this.o.host, n.name, {
            state: 'failed',
            error: errorMessage(e),
          });
        })
        .finally(() => {
          this.provisioning.delete(n.name);
          this.session?.invalidate();
        });
      this.provisioning.set(n.name, task);
    }
  }

  /**
   * Stops the agent: the decide loop, then its nodes (fast shutdown, primaries first is not
   * needed: another host's standby takes over a stopped primary), then its session.
   */
  /** SIGHUP: this host's file read again, its PostgreSQL settings applied here (agent-reload.ts). */
  async reload(): Promise<void> {
    if (!this.fileLoaded || !this.store || this.stopped) return;
    const { next, changes } = readAgentFile(this.fileLoaded, this.log);
    if (!next || changes.length === 0) return;
    this.fileLoaded = next;
    this.storedKey = ''; // merged again with the nodes recorded in the store, from the new file
    await this.followStoredNodes(this.store);
    if (changes.some((c) => c.kind === 'postgres')) {
      this.syncSet.clear(); // a primary gets its names again once a standby streams (syncNames)
      await reloadLocalNodes(this.cluster, this.localNodes, this.log);
    }
  }

  async stop(opts: { stopNodes?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.tick?.catch(() => undefined);
    this.desk?.stop();
    this.remote?.close();
    this.topology?.close();
    await this.haStarting?.catch(() => undefined);
    const ha = this.ha;
    this.ha = null;
    await ha?.stop().catch(() => undefined);
    await Promise.all(this.provisioning.values());
    await this.runner?.idle().catch(() => undefined);
    if (opts.stopNodes !== false) {
      for (const n of this.localNodes) await this.cluster.stopNode(n, 'fast').catch(() => undefined);
    }
    await this.session?.close();
    await this.store?.close().catch(() => undefined);
    this.store = null;
  }

  status(): unknown {
    return {
      host: this.o.host,
      decider: this.isDecider,
      session: this.session?.lease !== null,
      nodes: this.localNodes.map((n) => n.name),
    };
  }
}
