/** A pool's settings and counters, and the error it fails clients with. */
import { buildErrorResponse } from '../../protocol/error-response.js';
import type { PoolMode, ServerTlsMode } from '../types.js';
import { ServerLoginError } from './server-conn.js';
import type { NodeConcurrency } from './concurrency-limit.js';

export interface PoolSettings {
  size: number;
  minSize: number;
  mode: PoolMode;
  queryWaitTimeoutMs: number;
  serverIdleTimeoutMs: number;
  serverLifetimeMs: number;
  serverCheckDelayMs: number;
  connectTimeoutMs: number;
  tls: { mode: ServerTlsMode; caFile: string | null };
  maxPreparedStatements: number;
  /** node_concurrency: transactions at once on the server (`auto`, N, 0 for pool size only). */
  nodeConcurrency: NodeConcurrency;
}

export interface PoolStats {
  xacts: number;
  queries: number;
  bytesReceived: number;
  bytesSent: number;
  xactTimeUs: number;
  queryTimeUs: number;
  waitTimeUs: number;
  waits: number;
  /** Session-state checks run before giving a connection back (src/proxy/backend/state-check.ts). */
  stateChecks: number;
}

export function poolError(sqlstate: string, message: string): ServerLoginError {
  return new ServerLoginError(message, sqlstate, buildErrorResponse('FATAL', sqlstate, message));
}
