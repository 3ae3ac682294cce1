/**
 * `pgscale proxy`: the proxy alone, in front of any PostgreSQL servers named in the config's
 * `proxy.databases` (a managed database, say) or in an existing pgbouncer.ini. SIGHUP (or RELOAD
 * on the admin console) re-reads the file without dropping clients; SIGINT/SIGTERM stop it.
 * It logs as the controller does: pino JSON lines on stderr (`--log-format text` for people).
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { loadConfig, defaultConfigPath } from '../../config/load.js';
import type { ProxyConfig } from '../../config/schema.js';
import { ConfigError, ErrorCodes, UsageError } from '../../errors.js';
import { ProxyServer } from '../../proxy/proxy-server.js';
import { databasesResolver } from '../../proxy/resolver.js';
import { createRegistry } from '../../obs/metrics.js';
import { createLogger, textDestination } from '../../obs/logger.js';
import type { Logger } from '../../obs/logger.js';
import { closeHttpServer } from '../../web/http-server.js';
import { parse } from '../args.js';
import { out } from '../context.js';
import { runClusterProxy } from '../cluster-proxy.js';
import { registerProxyMetrics } from '../proxy-metrics.js';

export const help = `Usage: pgscale proxy [-c FILE | --pgbouncer-ini FILE] [--http HOST:PORT] [--log-format json|text]
       pgscale proxy -c FILE --cluster [--data-dir DIR]

Runs the pgscale proxy alone, in front of the servers listed under proxy.databases in FILE
(default ./pgscale.yaml), or of those of an existing PgBouncer configuration.
SIGHUP reloads the configuration; SIGINT or SIGTERM stops the proxy.

Options:
  -c, --config FILE       pgscale.yaml with a proxy section
  --pgbouncer-ini FILE    read a pgbouncer.ini instead ([databases], [pgbouncer])
  --cluster               follow the topology of a cluster over several hosts in etcd
                          (pgscale agent; FILE is the cluster's configuration): any number of
                          these proxies, on any host, each with its own pools
  --data-dir DIR          with --cluster: where the cluster's secrets.json is (default:
                          cluster.data_dir of FILE)
  --http HOST:PORT        also serve GET /metrics (Prometheus) and GET /health over HTTP there
  --log-format FORMAT     json (default: one pino JSON line per event on stderr, as the
                          controller logs) or text (time, level and message, for a terminal)
`;

function proxyLogger(format: string | boolean | undefined): Logger {
  if (format !== undefined && format !== 'json' && format !== 'text') {
    throw new UsageError(`--log-format: expected json or text, got "${String(format)}"`);
  }
  return createLogger({
    base: { component: 'proxy' },
    ...(format === 'text' ? { destination: textDestination(process.stderr) } : {}),
  });
}

/** HOST:PORT (or just PORT, on 127.0.0.1) for --http; a usage error names what is wrong. */
export function parseHttpAddress(v: string): { host: string; port: number } {
  const m = /^(?:(.+):)?(\d+)$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new UsageError(`--http: expected HOST:PORT or PORT with a port from 1 to 65535, got "${v}"`);
  return { host: (m[1] ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1'), port };
}

/** The standalone proxy's HTTP endpoint: its gauges and a liveness answer, nothing else. */
async function serveHttp(addr: { host: string; port: number }, proxy: ProxyServer): Promise<Server> {
  const registry = createRegistry({ service: 'pgscale-proxy' });
  registerProxyMetrics(registry, () => proxy);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (path === '/health') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: 'ok', clients: proxy.clients.size }));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      fail(
        new UsageError(
          `--http ${addr.host}:${addr.port}: cannot listen there (${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message})`,
        ),
      ),
    );
    server.listen(addr.port, addr.host, () => ok());
  });
  return server;
}

async function loadProxyConfig(
  values: Record<string, string | boolean | undefined>,
): Promise<{ config: ProxyConfig; warnings: string[] }> {
  if (typeof values['pgbouncer-ini'] === 'string') {
    const file = resolve(values['pgbouncer-ini']);
    const mod = await import('../../config/pgbouncer-ini.js');
    const r = mod.loadPgbouncerIni(file);
    return { config: r.config, warnings: r.warnings };
  }
  const file = typeof values.config === 'string' ? values.config : defaultConfigPath();
  const loaded = loadConfig(file);
  if (Object.keys(loaded.config.proxy.databases).length === 0) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `${loaded.file}: proxy.databases is empty: the standalone proxy needs at least one server (or use pgscale up)`,
    );
  }
  return { config: loaded.config.proxy, warnings: [...(loaded.warnings ?? [])] };
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('proxy', argv, {
    'pgbouncer-ini': { type: 'string' },
    http: { type: 'string' },
    'log-format': { type: 'string' },
    cluster: { type: 'boolean' },
    'data-dir': { type: 'string' },
  });
  if (values.help) return (out(help), 0);
  const log = proxyLogger(values['log-format']);
  if (values.cluster === true) {
    let loaded = loadConfig(typeof values.config === 'string' ? values.config : defaultConfigPath());
    if (typeof values['data-dir'] === 'string') loaded = { ...loaded, dataDir: resolve(values['data-dir']) };
    return runClusterProxy(loaded, log);
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
  const httpAddr = typeof values.http === 'string' ? parseHttpAddress(values.http) : null;
  const { config, warnings } = await loadProxyConfig(values);
  for (const w of warnings) log.warn(`warning: ${w}`);
  // SHUTDOWN stops the whole command (HTTP server too) once it runs; before that, the proxy alone.
  let stopCommand: ((why: string) => void) | null = null;
  const proxy: ProxyServer = new ProxyServer({
    config,
    resolve: databasesResolver(config),
    log: (l) => log.info(l),
    adminHooks: {
      reload: () => reload(),
      shutdown: () => (stopCommand ? stopCommand('SHUTDOWN') : void proxy.stop()),
    },
  });
  const reload = async (): Promise<string[]> => {
    const next = await loadProxyConfig(values);
    for (const w of next.warnings) log.warn(`warning: ${w}`);
    const restart = proxy.reload(next.config, databasesResolver(next.config));
    log.info(
      { needs_restart: restart },
      `configuration reloaded${restart.length ? `; needs a restart: ${restart.join(', ')}` : ''}`,
    );
    return restart;
  };
  const a = await proxy.start();
  let http: Server | null = null;
  if (httpAddr) {
    try {
      http = await serveHttp(httpAddr, proxy);
    } catch (e) {
      await proxy.stop();
      throw e;
    }
  }
  log.info(
    { host: a.host, port: a.port, http: httpAddr },
    `pgscale proxy ready on ${a.host}:${a.port}` +
      (httpAddr ? `; metrics on http://${httpAddr.host}:${httpAddr.port}/metrics` : ''),
  );
  return new Promise((resolvePromise) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      log.info(`${why}: stopping the proxy`);
      void Promise.all([proxy.stop(), http ? closeHttpServer(http) : null]).then(() => resolvePromise(0));
    };
    stopCommand = stop;
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGHUP', () => {
      reload().catch((e: unknown) =>
        log.error({ err: e }, `reload failed, keeping the old configuration: ${(e as Error).message}`),
      );
    });
  });
}
