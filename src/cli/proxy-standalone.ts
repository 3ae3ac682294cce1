/**
 * What the standalone `pgscale proxy` needs however many processes it runs: its logger, its
 * configuration (a pgscale.yaml's proxy section or a pgbouncer.ini), its HTTP endpoint
 * (/metrics and /health, answered by whoever holds the proxies), and the proxy of one process
 * with its signals (SIGHUP reloads; SIGINT, SIGTERM and SHUTDOWN stop it).
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { ClusterTls, proxyWithClusterCert } from '../cluster/tls.js';
import { loadConfig, defaultConfigPath } from '../config/load.js';
import type { ProxyConfig } from '../config/schema.js';
import { ConfigError, ErrorCodes, UsageError } from '../errors.js';
import { ProxyServer } from '../proxy/proxy-server.js';
import { databasesResolver } from '../proxy/resolver.js';
import { createRegistry } from '../obs/metrics.js';
import { createLogger, textDestination } from '../obs/logger.js';
import type { Logger } from '../obs/logger.js';
import { closeHttpServer } from '../web/http-server.js';
import { registerProxyMetrics } from './proxy-metrics.js';

export type ProxyArgs = Record<string, string | boolean | undefined>;

export function proxyLogger(
  format: string | boolean | undefined,
  base: Record<string, unknown> = {},
): Logger {
  if (format !== undefined && format !== 'json' && format !== 'text') {
    throw new UsageError(`--log-format: expected json or text, got "${String(format)}"`);
  }
  return createLogger({
    base: { component: 'proxy', ...base },
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

/** What the HTTP endpoint answers, from one proxy or from all the workers. */
export interface HttpAnswers {
  metrics(): Promise<{ text: string; contentType: string }>;
  health(): Promise<Record<string, unknown>>;
}

/** The standalone proxy's HTTP endpoint: its gauges and a liveness answer, nothing else. */
export async function serveHttp(addr: { host: string; port: number }, answers: HttpAnswers): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      answers.metrics().then(
        (m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.text),
        () => res.writeHead(500).end(),
      );
    } else if (path === '/health') {
      answers.health().then(
        (h) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(h)),
        () => res.writeHead(500).end(),
      );
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

export async function loadProxyConfig(
  values: ProxyArgs,
): Promise<{ config: ProxyConfig; warnings: string[] }> {
  if (typeof values['pgbouncer-ini'] === 'string') {
    const file = resolve(values['pgbouncer-ini']);
    const mod = await import('../config/pgbouncer-ini.js');
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
  // proxy.tls.cluster_ca: a certificate from the cluster CA of this file's data_dir.
  const config = proxyWithClusterCert(loaded.config.proxy, new ClusterTls(loaded));
  return { config, warnings: [...(loaded.warnings ?? [])] };
}

/** Logs a reload's outcome: what needs a restart. */
export function logReload(log: Logger, restart: readonly string[]): void {
  log.info(
    { needs_restart: restart },
    `configuration reloaded${restart.length ? `; needs a restart: ${restart.join(', ')}` : ''}`,
  );
}

/** The proxy in this process alone (proxy.workers: 1), until SIGINT, SIGTERM or SHUTDOWN. */
export async function runSingle(
  values: ProxyArgs,
  log: Logger,
  config: ProxyConfig,
  httpAddr: { host: string; port: number } | null,
): Promise<number> {
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
    logReload(log, restart);
    return restart;
  };
  const a = await proxy.start();
  let http: Server | null = null;
  if (httpAddr) {
    const registry = createRegistry({ service: 'pgscale-proxy' });
    registerProxyMetrics(registry, () => proxy);
    try {
      http = await serveHttp(httpAddr, {
        metrics: async () => ({ text: await registry.metrics(), contentType: registry.contentType }),
        health: () => Promise.resolve({ status: 'ok', clients: proxy.clients.size }),
      });
    } catch (e) {
      await proxy.stop();
      throw e;
    }
  }
  logReady(log, a, httpAddr);
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

/** The line tests and operators wait for. */
export function logReady(
  log: Logger,
  a: { host: string; port: number },
  httpAddr: { host: string; port: number } | null,
  workers = 1,
): void {
  log.info(
    { host: a.host, port: a.port, http: httpAddr, workers },
    `pgscale proxy ready on ${a.host}:${a.port}` +
      (workers > 1 ? ` (${workers} workers)` : '') +
      (httpAddr ? `; metrics on http://${httpAddr.host}:${httpAddr.port}/metrics` : ''),
  );
}
