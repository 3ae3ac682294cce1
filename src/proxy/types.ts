/**
 * Identifiers and small shared types of the proxy. Branded ids keep look-alikes apart: the
 * proxy's own client ids and cancel pids are never confused with a server's backend pid.
 */

export type ClientId = number & { readonly __brand: 'ClientId' };
export type ServerId = number & { readonly __brand: 'ServerId' };
export type BackendPid = number & { readonly __brand: 'BackendPid' };

export type PoolMode = 'transaction' | 'session';

/** How fresh a read served by a replica must be (docs/routing.md). */
export type Consistency = 'read-your-writes' | 'causal' | 'linearizable' | 'eventual' | 'primary';

/** Every level, in the order of the docs (config schema, SET pgscale.consistency). */
export const CONSISTENCY_LEVELS = [
  'read-your-writes',
  'causal',
  'linearizable',
  'eventual',
  'primary',
] as const satisfies readonly Consistency[];

/** Where a pool's connections go and as whom. */
export interface ServerTarget {
  readonly host: string;
  readonly port: number;
  /** Database name on the server. */
  readonly database: string;
  readonly user: string;
}

export type ServerCredentials =
  | { readonly kind: 'password'; readonly password: string }
  | {
      readonly kind: 'scram-keys';
      readonly clientKey: Buffer;
      readonly serverKey: Buffer;
      readonly salt: Buffer;
      readonly iterations: number;
    }
  | { readonly kind: 'md5-hash'; readonly hash: string }
  | { readonly kind: 'none' };

export type ServerTlsMode = 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

/** Monotonic milliseconds: time-outs must not jump with the wall clock. */
export function now(): number {
  return performance.now();
}

let readClock = performance.now();

/**
 * Reads the clock for the socket read about to be handled: each client and server `data`
 * handler calls it first, and the statistics of what that read causes (query and transaction
 * times, waits, last activity) take `readTime()` instead of reading the clock again, as
 * PgBouncer keeps one cached time per event-loop turn. Time-outs and deadlines use now().
 */
export function tickReadClock(): void {
  readClock = performance.now();
}

/** The time of the socket read being handled (see tickReadClock): for statistics only. */
export function readTime(): number {
  return readClock;
}
