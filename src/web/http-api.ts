/**
 * The HTTP API of a controller (node:http, JSON): GET /health, /status, /metrics, /services, and
 * the live dashboard (GET /dashboard, its data at /dashboard/state and /dashboard/events).
 * Outside /ha/ and /sharding/ anything but GET is 405, an unknown path 404, both as JSON. Every JSON body
 * passes through the same secret redaction as the logs, so a service that puts a password into
 * its status cannot leak it here. Shapes are documented in docs/http-api.md.
 */
import { closeHttpServer } from './http-server.js';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Cluster } from '../cluster/cluster.js';
import { ErrorCodes, PgscaleError, errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { redactSecrets } from '../obs/logger.js';
import { withShardAliases } from './json-aliases.js';
import type { Registry } from '../obs/metrics.js';
import { ClusterMetrics } from './cluster-metrics.js';
import { DashboardFeed } from './dashboard-feed.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard-page.js';
import type { ControllerInfo } from './status-report.js';
import { statusReport } from './status-report.js';

export class HttpApiError extends PgscaleError {}

/** One service as GET /services shows it. */
export interface ServiceReport {
  name: string;
  /** starting, running, stopping, stopped or failed. */
  state: string;
  /** What the service's status() returned (null when it has none or it threw). */
  status: unknown;
  /** Whether the service follows a configuration reload (SIGHUP, add-group…) without a restart. */
  reloads: boolean;
  error?: string;
}

export interface HttpApiOptions {
  host: string;
  port: number;
  cluster: Cluster;
  registry: Registry;
  logger: Logger;
  /** The controller's state; /health answers 200 only while it is `running`. */
  state: () => string;
  controller: () => ControllerInfo | null;
  services: () => ServiceReport[];
  /**
   * Endpoints under /ha/ (and any other a service adds): GET ones are open like the rest;
   * anything else needs `Authorization: Bearer <token>` with the token of `token()`.
   */
  actions?: ActionHandler;
  token?: () => string | null;
}

export type ActionHandler = (
  method: string,
  path: string,
  body: unknown,
  query: URLSearchParams,
) => Promise<{ status: number; body: unknown } | null>;

const MAX_BODY = 64 * 1024;

export class HttpApi {
  private server: Server | null = null;
  private readonly clusterMetrics: ClusterMetrics;
  /** The dashboard's samples and live streams (started and stopped with the server). */
  readonly dashboard: DashboardFeed;

  constructor(private readonly opts: HttpApiOptions) {
    this.clusterMetrics = new ClusterMetrics(opts.registry);
    this.dashboard = new DashboardFeed({
      cluster: () => opts.cluster.config.cluster.name,
      state: opts.state,
      controller: opts.controller,
      nodes: () => opts.cluster.status(),
      services: opts.services,
      // A source that fails (the HA history while the state store is unreachable) is left out.
      get: async (path, query) => {
        const r = await opts.actions?.('GET', path, null, new URLSearchParams(query)).catch(() => null);
        return r?.status === 200 ? r.body : null;
      },
      registry: opts.registry,
      logger: opts.logger,
    });
  }

  /** Listens; rejects with a message naming the address and `http.port` when it cannot. */
  async start(): Promise<{ host: string; port: number }> {
    const { host, port } = this.opts;
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        this.opts.logger.error({ err: e, path: req.url }, 'HTTP request failed');
        if (!res.headersSent) send(res, 500, { error: 'internal error' });
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        reject(bindError(e, host, port));
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host, port, exclusive: true });
    });
    server.on('error', (e) => this.opts.logger.error({ err: e }, 'HTTP server error'));
    this.server = server;
    this.dashboard.start();
    const addr = server.address();
    const bound = typeof addr === 'object' && addr ? addr.port : port;
    this.opts.logger.info({ host, port: bound }, `HTTP API listening on ${url(host, bound)}`);
    return { host, port: bound };
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    this.dashboard.stop();
    await closeHttpServer(server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://localhost');
    const path = u.pathname;
    const known = [
      '/health',
      '/status',
      '/metrics',
      '/services',
      '/ha',
      '/ha/history',
      '/sharding/map',
      '/sharding/moves',
      '/dashboard',
      '/dashboard/state',
      '/dashboard/events',
    ];
    if (
      path === '/ha' ||
      path.startsWith('/ha/') ||
      path.startsWith('/sharding/') ||
      path.startsWith('/config/')
    )
      return this.action(req, res, path, u.searchParams);
    if (req.method !== 'GET') {
      res.setHeader('Allow', 'GET');
      return send(res, 405, { error: `method ${req.method ?? '?'} not allowed; the API is read-only (GET)` });
    }
    switch (path) {
      case '/health': {
        const state = this.opts.state();
        const info = this.opts.controller();
        return send(res, state === 'running' ? 200 : 503, {
          status: state === 'running' ? 'ok' : state,
          pid: process.pid,
          started_at: info?.started_at ?? null,
        });
      }
      case '/status':
        return send(res, 200, await statusReport(this.opts.cluster, this.opts.controller()));
      case '/metrics': {
        try {
          this.clusterMetrics.update(await this.opts.cluster.status());
        } catch (e) {
          this.opts.logger.warn({ err: e }, 'could not read node status for /metrics');
          this.clusterMetrics.failed();
        }
        const text = await this.opts.registry.metrics();
        res.writeHead(200, { 'Content-Type': this.opts.registry.contentType, 'Cache-Control': 'no-store' });
        res.end(text);
        return;
      }
      case '/services':
        return send(res, 200, { services: this.opts.services() });
      case '/':
        res.writeHead(302, { Location: '/dashboard', 'Content-Length': 0 });
        res.end();
        return;
      case '/dashboard':
        res.writeHead(200, {
          'Content-Type': 'text/html; charset=utf-8',
          'Content-Length': Buffer.byteLength(DASHBOARD_HTML),
          'Content-Security-Policy': DASHBOARD_CSP,
          'Cache-Control': 'no-store',
        });
        res.end(DASHBOARD_HTML);
        return;
      case '/dashboard/state':
        return send(res, 200, await this.dashboard.answer(), false);
      case '/dashboard/events':
        return this.dashboard.subscribe(req, res);
      default:
        return send(res, 404, { error: `no such endpoint ${path}`, endpoints: known });
    }
  }

  private async action(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: URLSearchParams,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    if (!this.opts.actions) return send(res, 404, { error: `no such endpoint ${path}` });
    if (method !== 'GET') {
      const expected = this.opts.token?.() ?? null;
      const given = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      const ok = expected !== null && tokensEqual(given, expected);
      if (!ok) {
        return send(res, 401, {
          error:
            'this endpoint changes the cluster and needs the controller token (the pgscale CLI sends it)',
        });
      }
    }
    let body: unknown = null;
    if (method !== 'GET') {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of req as AsyncIterable<Buffer>) {
        size += c.length;
        if (size > MAX_BODY) return send(res, 413, { error: `request body over ${MAX_BODY} bytes` });
        chunks.push(c);
      }
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          return send(res, 400, { error: 'the request body is not JSON' });
        }
      }
    }
    const r = await this.opts.actions(method, path, body, query);
    if (!r) return send(res, 404, { error: `no such endpoint ${method} ${path}` });
    return send(res, r.status, r.body);
  }
}

/**
 * Constant-time comparison of two tokens of any length and any characters: their SHA-256 digests
 * always have the same length, which timingSafeEqual requires (comparing string lengths is not
 * enough: a header read as Latin-1 can have the token's length and twice its bytes in UTF-8).
 */
export function tokensEqual(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** A JSON answer; `aliases: false` for new endpoints, which never had the old `shard` names. */
function send(res: ServerResponse, code: number, body: unknown, aliases = true): void {
  const safe = redactSecrets(body);
  const text = JSON.stringify(aliases ? withShardAliases(safe) : safe, null, 2) + '\n';
  res.writeHead(code, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

/** An address a local client can reach a server on that listens on `host` (any address → loopback). */
export function localHost(host: string): string {
  return host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
}

export function url(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Binds and releases host:port, so that a port in use or an address this host lacks is reported
 * (naming http.port / http.listen) before anything starts.
 */
export async function checkListen(host: string, port: number, configFile?: string): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (e: NodeJS.ErrnoException) => reject(bindError(e, host, port, configFile)));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function bindError(e: NodeJS.ErrnoException, host: string, port: number, configFile?: string): HttpApiError {
  const where = `${host}:${port}`;
  const config = configFile ?? 'the config';
  switch (e.code) {
    case 'EADDRINUSE':
      return new HttpApiError(
        ErrorCodes.PORT_IN_USE,
        `port ${port} of the HTTP API (http.port, on ${host}) is already in use by another process; ` +
          `stop it or choose another http.port in ${config}`,
        { cause: e },
      );
    case 'EACCES':
      return new HttpApiError(
        ErrorCodes.PORT_IN_USE,
        `the HTTP API cannot listen on ${where}: permission denied (ports below 1024 need privileges); choose another http.port in ${config}`,
        { cause: e },
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return new HttpApiError(
        ErrorCodes.PORT_IN_USE,
        `the HTTP API cannot listen on ${where}: address ${host} is not available on this host; check http.listen in ${config}`,
        { cause: e },
      );
    default:
      return new HttpApiError(
        ErrorCodes.PORT_IN_USE,
        `the HTTP API cannot listen on ${where} (http.listen, http.port): ${errorMessage(e)}`,
        { cause: e },
      );
  }
}
