/**
 * The composition root of the controller's services: what runs inside `pgscale up` besides the
 * PostgreSQL nodes and the HTTP API. Each entry is a Service (src/controller/service.ts) that the
 * controller starts after the cluster is up, in this order, and stops in reverse order.
 *
 * To add one (later the HA decide loop): construct it here from the config, the cluster
 * and a child logger, register its metrics into `registry`, and return it in the list, e.g.
 *   if (loaded.config.proxy.enabled) list.push(new ProxyService({ config: loaded.config.proxy, … }));
 */
import type { Cluster } from '../cluster/cluster.js';
import type { LoadedConfig } from '../config/load.js';
import type { Service } from '../controller/service.js';
import type { Logger } from '../obs/logger.js';
import type { Registry } from '../obs/metrics.js';
import { NodeAgentsService } from '../controller/node-agents.js';
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
  if (ctx.loaded.config.proxy.enabled) {
    list.push(
      new ProxyService(ctx.loaded, ctx.cluster, ctx.logger.child({ component: 'proxy' }), ctx.registry),
    );
  }
  // Each node's health endpoints (Patroni's /primary, /replica …) on its api_port, for HAProxy.
  list.push(new NodeAgentsService(ctx.loaded, ctx.cluster, ctx.logger.child({ component: 'agents' })));
  return list;
}
