/**
 * `pgscale proxy`: the proxy alone, in front of any PostgreSQL servers named in the config's
 * `proxy.databases` (a managed database, say) or in an existing pgbouncer.ini. SIGHUP (or RELOAD
 * on the admin console) re-reads the file without dropping clients; SIGINT/SIGTERM stop it.
 * With `--workers N` (or proxy.workers) N processes serve the port (proxy-workers.ts). It logs as
 * the controller does: pino JSON lines on stderr (`--log-format text` for people).
 */
import nodeCluster from 'node:cluster';
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { defaultConfigPath, loadConfig } from '../../config/load.js';
import type { ProxyConfig } from '../../config/schema.js';
import { UsageError } from '../../errors.js';
import { parse } from '../args.js';
import { out } from '../context.js';
import { runClusterProxy } from '../cluster-proxy.js';
import { loadProxyConfig, parseHttpAddress, proxyLogger, runSingle } from '../proxy-standalone.js';
import { parseWorkers } from '../proxy-worker-messages.js';

export { parseHttpAddress } from '../proxy-standalone.js';

export const help = `Usage: pgscale proxy [-c FILE | --pgbouncer-ini FILE] [--workers N|auto] [--http HOST:PORT]
                     [--log-format json|text]
       pgscale proxy -c FILE --cluster [--data-dir DIR] [--workers N|auto] [--http HOST:PORT]

Runs the pgscale proxy alone, in front of the servers listed under proxy.databases in FILE
(default ./pgscale.yaml), or of those of an existing PgBouncer configuration.
SIGHUP reloads the configuration; SIGINT or SIGTERM stops the proxy.

Options:
  -c, --config FILE       pgscale.yaml with a proxy section
  --pgbouncer-ini FILE    read a pgbouncer.ini instead ([databases], [pgbouncer])
  --workers N|auto        N processes serve the port (auto: one per CPU), each with its own
                          pools; overrides proxy.workers (default 1)
  --cluster               follow the topology of a cluster over several hosts in etcd
                          (pgscale agent; FILE is the cluster's configuration): any number of
                          these proxies, on any host, each with its own pools; with
                          --workers each worker is such a proxy, all on one port
  --data-dir DIR          with --cluster: where the cluster's secrets.json is (default:
                          cluster.data_dir of FILE)
  --http HOST:PORT        also serve GET /metrics (Prometheus) and GET /health over HTTP there
  --log-format FORMAT     json (default: one pino JSON line per event on stderr, as the
                          controller logs) or text (time, level and message, for a terminal)
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('proxy', argv, {
    'pgbouncer-ini': { type: 'string' },
    http: { type: 'string' },
    'log-format': { type: 'string' },
    cluster: { type: 'boolean' },
    'data-dir': { type: 'string' },
    workers: { type: 'string' },
  });
  if (values.help) return (out(help), 0);
  const clusterConfig = () => {
    const loaded = loadConfig(typeof values.config === 'string' ? values.config : defaultConfigPath());
    return typeof values['data-dir'] === 'string'
      ? { ...loaded, dataDir: resolve(values['data-dir']) }
      : loaded;
  };
  if (nodeCluster.isWorker) {
    // A worker of the proxy below: the primary gives it its number and configuration.
    const { runWorker } = await import('../proxy-worker.js');
    if (values.cluster !== true) return runWorker(proxyLogger(values['log-format']));
    const { clusterBody } = await import('../cluster-proxy-worker.js');
    return runWorker(proxyLogger(values['log-format']), clusterBody(clusterConfig()));
  }
  const log = proxyLogger(values['log-format']);
  const httpAddr = typeof values.http === 'string' ? parseHttpAddress(values.http) : null;
  const flag =
    typeof values.workers === 'string' ? parseWorkers(values.workers, availableParallelism()) : null;
  if (values.cluster === true) {
    const loaded = clusterConfig();
    const count = (c: ProxyConfig) => flag ?? parseWorkers(c.workers, availableParallelism());
    const workers = count(loaded.config.proxy);
    if (workers === 1) {
      if (httpAddr) throw new UsageError('--http with --cluster is served with --workers 2 or more for now');
      return runClusterProxy(loaded, log);
    }
    // Each worker is a proxy of the cluster of its own (cluster-proxy-worker.ts).
    const { ProxyPrimary } = await import('../proxy-workers.js');
    const proxyConfig = (l: typeof loaded) => ({ ...l.config.proxy, workers: count(l.config.proxy) });
    return new ProxyPrimary({
      count: workers,
      config: proxyConfig(loaded),
      load: () => Promise.resolve({ config: proxyConfig(clusterConfig()), warnings: [] }),
      httpAddr,
      log,
    }).run();
  }
  if (values['pgbouncer-ini'] !== undefined && values.config !== undefined) {
    throw new UsageError('give either -c FILE or --pgbouncer-ini FILE, not both');
  }
  if (
    values['pgbouncer-ini'] === undefined &&
    values.config === undefined &&
    !existsSync(defaultConfigPath())
  ) {
    throw new UsageError('no configuration: pass -c FILE or --pgbouncer-ini FILE');
  }
  const { config, warnings } = await loadProxyConfig(values);
  for (const w of warnings) log.warn(`warning: ${w}`);
  const workers = flag ?? parseWorkers(config.workers, availableParallelism());
  if (workers === 1) return runSingle(values, log, config, httpAddr);
  const { ProxyPrimary } = await import('../proxy-workers.js');
  const primary = new ProxyPrimary({
    count: workers,
    // --workers wins over the file, at start and at every reload.
    config: { ...config, workers },
    load: async () => {
      const next = await loadProxyConfig(values);
      const n = flag ?? parseWorkers(next.config.workers, availableParallelism());
      return { ...next, config: { ...next.config, workers: n } };
    },
    httpAddr,
    log,
  });
  return primary.run();
}
