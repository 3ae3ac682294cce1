/**
 * `pgscale proxy --cluster`: a stateless proxy for a cluster spread over several hosts. It runs
 * on any host, as many as wanted: the topology comes from etcd (written by the decider,
 * src/ha/store-topology.ts), the pools are its own, and the application's credentials come from
 * the cluster's secrets.json (copied to the proxy's host, as to every agent's). Everything else
 * is the proxy `pgscale up` runs (src/cli/proxy-service.ts): read/write splitting, holds during a
 * failover, following each group's primary.
 *
 * Sharding is not served this way yet (its service runs inside `pgscale up` only): a cluster
 * whose catalog distributes tables is refused at start, never answered wrongly.
 */
import { Cluster } from '../cluster/cluster.js';
import type { LoadedConfig } from '../config/load.js';
import { ConfigError, ErrorCodes, errorMessage } from '../errors.js';
import { openStore } from '../ha/open-store.js';
import { CLAIM_KEY } from '../ha/store-claim.js';
import { TopologyFollower } from '../ha/store-topology.js';
import type { Logger } from '../obs/logger.js';
import { createRegistry } from '../obs/metrics.js';
import { decode } from '../sharding/catalog-codec.js';
import { CATALOG_KEY } from '../sharding/catalog-store.js';
import { TopologyView } from '../topology/topology.js';
import { ProxyService } from './proxy-service.js';

/** How long the proxy waits at start for a decider to have written the topology. */
const FIRST_TOPOLOGY_MS = 60_000;

export async function runClusterProxy(loaded: LoadedConfig, log: Logger): Promise<number> {
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
  try {
    if ((await store.get(CLAIM_KEY)) === null)
      throw new ConfigError(
        ErrorCodes.CONFIG_INVALID,
        `cluster "${loaded.config.cluster.name}" has no keys in ${store.describe}: start its agents first`,
      );
    const catalog = await store.get(CATALOG_KEY);
    if (catalog && decode(catalog.value).tables.size > 0)
      throw new ConfigError(
        ErrorCodes.CONFIG_INVALID,
        `cluster "${loaded.config.cluster.name}" has distributed tables; the proxy over several hosts does not serve sharding yet (run the cluster with pgscale up)`,
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
    service = new ProxyService(loaded, cluster, log, createRegistry({ service: 'pgscale-proxy' }), view);
    await service.start();
  } catch (e) {
    follower.stop();
    await store.close().catch(() => undefined);
    throw e;
  }
  const running = service;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal: sig }, `${sig}: stopping`);
      void (async () => {
        let code = 0;
        try {
          await running.stop();
        } catch (e) {
          log.error(`stopping the proxy failed: ${errorMessage(e)}`);
          code = 1;
        }
        follower.stop();
        await store.close().catch(() => undefined);
        for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, onSignal);
        resolve(code);
      })();
    };
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, onSignal);
  });
}
