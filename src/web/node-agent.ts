/**
 * One node's health endpoints: a small node:http server on the node's api_port that answers
 * Patroni's checks (/primary, /replica?lag=, /read-only, /health, … see health-checks.ts) for
 * that node, so that HAProxy can check each backend server on a port of its own
 * (`server s0n1 … check port 8010`). It never queries PostgreSQL itself: it asks its owner for a
 * recent status of the node (`current()`), which keeps the probing in one place.
 *
 * Methods as in Patroni: GET answers the status code with the JSON status document; HEAD and
 * OPTIONS answer the same status code without a body (HAProxy's `option httpchk` alone sends
 * `OPTIONS /`); anything else is 405.
 */
import { closeHttpServer } from './http-server.js';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { NodeStatus } from '../cluster/status.js';
import type { NodeRef } from '../config/load.js';
import { ErrorCodes, PgscaleError, errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { redactSecrets } from '../obs/logger.js';
import { withShardAliases } from './json-aliases.js';
import { ENDPOINT_PATHS, checkCode, endpointOf, parseLag, statusDocument } from './health-checks.js';

export class NodeAgentError extends PgscaleError {}

/** What the agent knows about its node: its status (null when unknown) and when it was read. */
export interface NodeSnapshot {
  status: NodeStatus | null;
  /** ISO time the status was read, or null when it never was. */
  readAt: string | null;
}

export interface NodeAgentOptions {
  node: NodeRef;
  /** Address to listen on (the controller's http.listen). */
  host: string;
  cluster: string;
  serverVersion: number | null;
  /** A status recent enough to answer from; may refresh it first. */
  current: () => Promise<NodeSnapshot>;
  logger: Logger;
  /** The config file, named in error messages. */
  configFile?: string;
}

const ALLOW = 'GET, HEAD, OPTIONS';

export class NodeAgent {
  private server: Server | null = null;

  constructor(private readonly opts: NodeAgentOptions) {}

  get port(): number {
    return this.opts.node.apiPort;
  }

  async start(): Promise<void> {
    const { host } = this.opts;
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        this.opts.logger.error({ err: e, path: req.url }, 'health check failed');
        if (!res.headersSent) send(res, req, 500, { error: 'internal error' });
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        reject(agentBindError(e, host, this.opts.node, this.opts.configFile));
      };
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host, port: this.port, exclusive: true });
    });
    server.on('error', (e) => this.opts.logger.error({ err: e }, 'health endpoint server error'));
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    await closeHttpServer(server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') {
      res.setHeader('Allow', ALLOW);
      return send(res, req, 405, { error: `method ${method} not allowed (${ALLOW})` });
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const endpoint = endpointOf(url.pathname);
    if (!endpoint) {
      return send(res, req, 404, { error: `no such endpoint ${url.pathname}`, endpoints: ENDPOINT_PATHS });
    }
    const lagText = url.searchParams.get('lag');
    const maxLagBytes = lagText === null ? null : parseLag(lagText);
    if (lagText !== null && maxLagBytes === null) {
      return send(res, req, 400, {
        error: `lag=${lagText} is not a size: give bytes (1048576) or a size such as 1024kB, 16MB, 1GB`,
      });
    }
    const ctx = {
      cluster: this.opts.cluster,
      node: this.opts.node.name,
      serverVersion: this.opts.serverVersion,
    };
    if (endpoint === 'liveness') {
      // Answers without waiting for PostgreSQL: the agent itself is alive.
      return send(res, req, 200, { status: 'ok', node: this.opts.node.name });
    }
    const snap = await this.opts.current();
    const code = checkCode(endpoint, snap.status, { maxLagBytes });
    return send(res, req, code, statusDocument(snap.status, { ...ctx, readAt: snap.readAt }));
  }
}

/** JSON for GET; the status line and headers alone for HEAD and OPTIONS (Patroni does the same). */
function send(res: ServerResponse, req: IncomingMessage, code: number, body: unknown): void {
  const text = JSON.stringify(withShardAliases(redactSecrets(body))) + '\n';
  const withBody = req.method === 'GET' || req.method === undefined;
  res.writeHead(code, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': withBody || req.method === 'HEAD' ? Buffer.byteLength(text) : 0,
    'Cache-Control': 'no-store',
  });
  res.end(withBody ? text : undefined);
}

/** Binds and releases the node's api port, so a port in use is named before anything starts. */
export async function checkAgentPort(host: string, node: NodeRef, configFile?: string): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (e: NodeJS.ErrnoException) => reject(agentBindError(e, host, node, configFile)));
    probe.listen({ host, port: node.apiPort, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function agentBindError(
  e: NodeJS.ErrnoException,
  host: string,
  node: NodeRef,
  configFile?: string,
): NodeAgentError {
  const key = `groups[${node.group}].nodes[${node.index}].api_port`;
  const which =
    node.api_port === undefined ? `${key} not set: derived from http.port and the node's position` : key;
  const fix = `set ${key} to a free port in ${configFile ?? 'the config'}`;
  const what = `port ${node.apiPort} of the health endpoints of node ${node.name} (${which}, on ${host})`;
  const msg =
    e.code === 'EADDRINUSE'
      ? `${what} is already in use by another process; stop it or ${fix}`
      : e.code === 'EACCES'
        ? `${what} cannot be bound: permission denied; ${fix}`
        : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND'
          ? `${what} cannot be bound: address ${host} is not available on this host; check http.listen`
          : `${what} cannot be bound: ${errorMessage(e)}`;
  return new NodeAgentError(ErrorCodes.PORT_IN_USE, msg, { cause: e });
}
