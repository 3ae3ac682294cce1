/**
 * The one error type of pgscale. Every failure we raise carries a stable string `code` (listed in
 * `ErrorCodes`, so scripts and tests can match on it) and, where there is one, the `cause`.
 * Subclasses name the domain. Expected outcomes on hot paths are returned as values, not thrown.
 */

export const ErrorCodes = {
  CONFIG_INVALID: 'PGSCALE_CONFIG_INVALID',
  CONFIG_NOT_FOUND: 'PGSCALE_CONFIG_NOT_FOUND',
  CONFIG_EXISTS: 'PGSCALE_CONFIG_EXISTS',
  BINARIES_NOT_FOUND: 'PGSCALE_BINARIES_NOT_FOUND',
  BINARY_FAILED: 'PGSCALE_BINARY_FAILED',
  PORT_IN_USE: 'PGSCALE_PORT_IN_USE',
  DATADIR_FOREIGN: 'PGSCALE_DATADIR_FOREIGN',
  DATADIR_UNREACHABLE: 'PGSCALE_DATADIR_UNREACHABLE',
  NODE_NOT_FOUND: 'PGSCALE_NODE_NOT_FOUND',
  NODE_START_FAILED: 'PGSCALE_NODE_START_FAILED',
  NO_PRIMARY: 'PGSCALE_NO_PRIMARY',
  ROOT_USER: 'PGSCALE_ROOT_USER',
  TIMEOUT: 'PGSCALE_TIMEOUT',
  USAGE: 'PGSCALE_USAGE',
  PROTOCOL: 'PGSCALE_PROTOCOL',
  AUTH: 'PGSCALE_AUTH',
  INTERNAL: 'PGSCALE_INTERNAL',
  STORE_UNAVAILABLE: 'PGSCALE_STORE_UNAVAILABLE',
  /** A put or compare-and-set named a lease that has ended (or never existed). */
  STORE_LEASE_NOT_FOUND: 'PGSCALE_STORE_LEASE_NOT_FOUND',
  /** The cluster's keys in the state store are held by another cluster (same cluster.id). */
  STORE_CLAIMED: 'PGSCALE_STORE_CLAIMED',
  HA_REFUSED: 'PGSCALE_HA_REFUSED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class PgscaleError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export class ConfigError extends PgscaleError {}
export class ClusterError extends PgscaleError {}
export class ProtocolError extends PgscaleError {}
export class UsageError extends PgscaleError {
  constructor(message: string) {
    super(ErrorCodes.USAGE, message);
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
