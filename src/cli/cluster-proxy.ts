/**
 * `pgscale proxy --cluster`: a stateless proxy for a cluster spread over several hosts. It runs
 * on any host, as many as wanted: the topology comes from etcd (written by the decider,
 * src/ha/store-topology.ts), the pools are its own, and the application's credentials come from
 * the cluster's secrets.json (copied to the proxy's host, as to every agent's). Everything else
 * is the proxy `pgscale up` runs (src/cli/proxy-service.ts): read/write splitting, holds during a
 * failover, following each group's primary. Sharding too: each proxy runs the sharding service
 * over the catalog in etcd, and one of them at a time the cluster-wide duties
 * (sharding-proxies.ts), shard moves among them, their cutover held at every proxy (sharding-holds.ts).
 * With proxy.workers each worker process runs all of this as a proxy of its own
 * (cluster-proxy-worker.ts passes `worker`).
 */
import { Cluster } from '../cluster/cluster.js';
import type { LoadedConfig } from '../config/load.js';
import { ConfigError, ErrorCodes, errorMessage } from '../errors.js';
import { openStore } from '../ha/open-store.js';
import { CLAIM_KEY } from '../ha/store-claim.js';
import { TopologyFollower } from '../ha/store-topology.js';
import type { Logger } from '../obs/logger.js';
import { createRegistry } from '../obs/metrics.js';
import type { Registry } from 'prom-client';
import type { AdminHooks } from '../proxy/admin-view.js';
import type { ProxyServer } from '../proxy/proxy-server.js';
import { TopologyView } from '../topology/topology.js';
import { setCancelInstance } from '../proxy/frontend/cancel-key.js';
import { ProxyPeers, advertisedHost } from './proxy-peers.js';
import { ProxyService } from './proxy-service.js';
import { ShardingProxies } from './sharding-proxies.js';
import { ShardingService } from './sharding-service.js';

/** How long the proxy waits at start for a decider to have written the topology. */
const FIRST_TOPOLOGY_MS = 60_000;

/** What a worker of a proxy with proxy.workers brings (cluster-proxy-worker.ts). */
export interface ClusterWorker {
  /** Its number among the proxy's workers. */
  readonly instance: number;
  readonly primaryPid: number;
  /** Sends a CancelRequest for another worker's client there, through the primary. */
  readonly sibling: (processId: number, key: Buffer) => void;
  readonly registry: Registry;
  /** SHOW, PAUSE/RESUME/KILL and RELOAD over every worker. */
  readonly adminHooks: AdminHooks;
}

/** A running proxy of the cluster. */
export interface ClusterProxy {
  /** Its number in `proxies/<n>` (the one in its clients' process ids). */
  readonly id: number;
  server(): ProxyServer | null;
  /** RELOAD: the file read again; the settings that need a restart. */
  reload(): Promise<string[]>;
  /** Stops serving and leaves the cluster (its registration at once); the exit code. */
  stop(): Promise<number>;
}

/** `pgscale proxy --cluster` of one process: serves until SIGINT or SIGTERM. */
export async function runClusterProxy(loaded: LoadedConfig, log: Logger): Promise<number> {
  const proxy = await startClusterProxy(loaded, log);
  return new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, onSignal);
      log.info({ signal: sig }, `${sig}: stopping`);
      void proxy.stop().then(resolve);
    };
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, onSignal);
  });
}

export async function startClusterProxy(
  loaded: LoadedConfig,
  log: Logger,
  worker?: ClusterWorker,
): Promise<ClusterProxy> {
  if (loaded.config.ha.store !== 'etcd')
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `${loaded.file}: pgscale proxy --cluster follows a cluster over several hosts, which needs ha.store: etcd`,
    );
  const cluster = new Cluster(loaded);
  cluster.secrets(); // the application's password: a clear error when secrets.json is missing
  const store = await openStore(loaded, log);
  const view = new TopologyView();
  const follower = new TopologyFollower(store, view, log);
  let service: ProxyService | null = null;
  let peers: ProxyPeers | null = null;
  let sharding: ShardingService | null = null;
  try {
    if ((await store.get(CLAIM_KEY)) === null)
      throw new ConfigError(
        ErrorCodes.CONFIG_INVALID,
        `cluster "${loaded.config.cluster.name}" has no keys in ${store.describe}: start its agents first`,
      );
    const until = Date.now() + FIRST_TOPOLOGY_MS;
    let found = await follower.start();
    while (!found && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 500));
      found = view.current().groups.length > 0;
    }
    if (!found)
      throw new ConfigError(
        ErrorCodes.CONFIG_INVALID,
        `no topology in ${store.describe} after ${FIRST_TOPOLOGY_MS / 1000} s: is an agent of cluster "${loaded.config.cluster.name}" running?`,
      );
    const { listen, port } = loaded.config.proxy;
    peers = await ProxyPeers.join(
      store,
      {
        host: advertisedHost(listen),
        port,
        pid: process.pid,
        ...(worker ? { worker: worker.instance, primary: worker.primaryPid } : {}),
      },
      log,
      loaded.config.ha.ttl * 1000,
      worker?.sibling,
    );
    setCancelInstance(peers.id);
    const registered = peers;
    const ttlMs = loaded.config.ha.ttl * 1000;
    const shardLog = log.child({ component: 'sharding' });
    // Started before the proxy (its catalog is loaded before a client is routed), stopped after.
    sharding = new ShardingService(
      loaded,
      cluster,
      shardLog,
      view,
      () => store,
      new ShardingProxies(
        store,
        { id: registered.id, lease: () => registered.leaseId, others: () => registered.others() },
        shardLog,
        ttlMs,
      ),
    );
    await sharding.start();
    const shardingService = sharding;
    service = new ProxyService(
      loaded,
      cluster,
      log,
      worker?.registry ?? createRegistry({ service: 'pgscale-proxy' }),
      view,
      () => shardingService,
      (pid, key) => registered.forward(pid, key),
      worker ? { adminHooks: worker.adminHooks, workers: true } : {},
    );
    await service.start();
    log.info({ proxy: peers.id }, `proxy number ${peers.id} of cluster "${loaded.config.cluster.name}"`);
  } catch (e) {
    await sharding?.stop().catch(() => undefined);
    follower.stop();
    await peers?.close();
    await store.close().catch(() => undefined);
    throw e;
  }
  const registration = peers;
  const running = service;
  const shardingRunning = sharding;
  let stopped: Promise<number> | null = null;
  const stop = async (): Promise<number> => {
    let code = 0;
    try {
      await running.stop();
    } catch (e) {
      log.error(`stopping the proxy failed: ${errorMessage(e)}`);
      code = 1;
    }
    await shardingRunning
      ?.stop()
      .catch((e: unknown) => log.error(`stopping sharding failed: ${errorMessage(e)}`));
    follower.stop();
    await registration.close();
    await store.close().catch(() => undefined);
    return code;
  };
  return {
    id: registration.id,
    server: () => running.server,
    reload: () => running.reload(),
    stop: () => (stopped ??= stop()),
  };
}
