/**
 * Metrics: one prom-client registry per controller (never the library's global one, so two
 * controllers or tests in one process do not collide), with the process's default metrics
 * (CPU, memory, event-loop lag, handles). Components register their own metrics into it; the
 * HTTP API serves it at GET /metrics.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';

export type { Registry } from 'prom-client';

export function createRegistry(labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  if (Object.keys(labels).length > 0) registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry });
  return registry;
}
