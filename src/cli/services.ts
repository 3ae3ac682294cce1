/**
 * The composition root of the controller's services: what runs inside `pgscale up` besides the
 * PostgreSQL nodes and the HTTP API. Each entry is a Service (src/controller/service.ts) that the
 * controller starts after the cluster is up, in this order, and stops in reverse order.
 *
 * High availability comes first: its first cycle publishes the topology (who is primary) before
 * the proxy, which routes by it, accepts a client.
 */
import type { Cluster } from '../cluster/cluster.js';
import type { LoadedConfig } from '../config/load.js';
import type { Service } from '../controller/service.js';
import { registerHaMetrics } from '../ha/ha-metrics.js';
import { HaService } from '../ha/ha-service.js';
import { openStore } from '../ha/open-store.js';
import type { Logger } from '../obs/logger.js';
import type { Registry } from '../obs/metrics.js';
import { NodeAgentsService } from '../controller/node-agents.js';
import { TopologyView } from '../topology/topology.js';
import { BackupService } from './backup-service.js';
import { ProxyService } from './proxy-service.js';
import { ShardingService } from './sharding-service.js';
import { openClaimedStore } from './store-keys.js';

export interface ServiceContext {
  loaded: LoadedConfig;
  cluster: Cluster;
  logger: Logger;
  /** The controller's metrics registry (served at GET /metrics). */
  registry: Registry;
}

export function buildServices(ctx: ServiceContext): Service[] {
  const list: Service[] = [];
  const ha = ctx.loaded.config.ha.enabled;
  const view = ha ? new TopologyView() : undefined;
  let haService: HaService | null = null;
  if (view) {
    const log = ctx.logger.child({ component: 'ha' });
    // The cluster claims its keys before HA reads or writes any (one cluster per set of keys).
    const open = () => openClaimedStore(ctx.cluster, () => openStore(ctx.loaded, log));
    haService = new HaService(ctx.loaded, ctx.cluster, open, view, log);
    const service = haService;
    registerHaMetrics(ctx.registry, () => service.metricsSnapshot());
    list.push(service);
  }
  if (ctx.loaded.config.proxy.enabled) {
    // Sharding starts before the proxy (its catalog is loaded before any client is routed) and
    // stops after it; it keeps its catalog in HA's store, or opens the store itself without HA.
    let sharding: ShardingService | null = null;
    const proxy = new ProxyService(
      ctx.loaded,
      ctx.cluster,
      ctx.logger.child({ component: 'proxy' }),
      ctx.registry,
      view,
      () => sharding,
    );
    sharding = new ShardingService(
      ctx.loaded,
      ctx.cluster,
      ctx.logger.child({ component: 'sharding' }),
      proxy.view,
      () => haService?.stateStore ?? null,
    );
    list.push(sharding, proxy);
  }
  // Each node's health endpoints (Patroni's /primary, /replica …) on its api_port, for HAProxy.
  list.push(new NodeAgentsService(ctx.loaded, ctx.cluster, ctx.logger.child({ component: 'agents' })));
  // Scheduled backups (backup.schedule), when pgBackRest takes them.
  const schedule = ctx.loaded.config.backup.schedule;
  if (ctx.cluster.pgbackrest() && Object.values(schedule).some((s) => s !== null))
    list.push(
      new BackupService(ctx.cluster, ctx.logger.child({ component: 'backup' }), (e) => haService?.record(e)),
    );
  return list;
}
