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
import { ProxyService } from './proxy-service.js';

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
  if (view) {
    const log = ctx.logger.child({ component: 'ha' });
    const service = new HaService(ctx.loaded, ctx.cluster, () => openStore(ctx.loaded, log), view, log);
    registerHaMetrics(ctx.registry, () => service.metricsSnapshot());
    list.push(service);
  }
  if (ctx.loaded.config.proxy.enabled) {
    list.push(
      new ProxyService(ctx.loaded, ctx.cluster, ctx.logger.child({ component: 'proxy' }), ctx.registry, view),
    );
  }
  // Each node's health endpoints (Patroni's /primary, /replica …) on its api_port, for HAProxy.
  list.push(new NodeAgentsService(ctx.loaded, ctx.cluster, ctx.logger.child({ component: 'agents' })));
  return list;
}
