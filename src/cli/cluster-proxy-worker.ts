/**
 * A worker of `pgscale proxy --cluster` with proxy.workers (or --workers): each worker is a whole
 * proxy of the cluster (cluster-proxy.ts) — its own connection to etcd, topology, sharding catalog
 * and pools — registered under a number of its own (`proxies/<n>`, under its own lease, with the
 * address the workers share). So the cancel keys, the sharding duty and the catalog acks work per
 * worker exactly as per proxy, and a worker that dies leaves with its lease. What the workers
 * share is the primary's (proxy-workers.ts): the port, the admin console's rounds over every
 * worker (SHOW, PAUSE, RESUME, KILL, RELOAD), /metrics, restarts and signals. A CancelRequest for
 * another worker's client goes through the primary (proxy-peers.ts tells a sibling by its address).
 */
import type { LoadedConfig } from '../config/load.js';
import { startClusterProxy } from './cluster-proxy.js';
import type { StartBody } from './proxy-worker.js';

export function clusterBody(loaded: LoadedConfig): StartBody {
  return async (p) => {
    const proxy = await startClusterProxy(loaded, p.log, {
      instance: p.instance,
      primaryPid: process.ppid,
      sibling: p.toSibling,
      registry: p.registry,
      adminHooks: p.adminHooks,
    });
    const { listen, port } = loaded.config.proxy;
    return {
      host: listen,
      port,
      body: {
        server: () => proxy.server(),
        // Each worker reads the file itself (it needs all of it, not the proxy section alone).
        reload: () => proxy.reload(),
        stop: async () => void (await proxy.stop()),
      },
    };
  };
}
