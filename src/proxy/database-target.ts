/**
 * Where a database's connections go, as the proxy's resolver answers it: a standalone config's
 * `proxy.databases` entry, or under `pgscale up` the database's group in the cluster's topology.
 */
import type { PoolMode } from './types.js';

export interface DatabaseTarget {
  host: string;
  port: number;
  /** Database name on the server. */
  dbname: string;
  /** Force this server user (and its password) for every client of this database. */
  user?: string;
  password?: string;
  poolSize?: number;
  poolMode?: PoolMode;
  /** Read replicas of this server (read/write splitting). */
  replicas?: readonly { name?: string; host: string; port: number }[];
  /** The target comes from the cluster's topology and follows its primary (HA). */
  followsTopology?: boolean;
  /** The replication group whose primary a topology-following target follows (default 0). */
  group?: number;
  /**
   * Served through a `*` entry rather than by name: its pools are made on demand and freed once
   * no client has used them for autodb_idle_timeout (PgBouncer's autodb), so client-chosen names
   * cannot grow the proxy without bound.
   */
  onDemand?: boolean;
}

export type DatabaseResolver = (database: string) => DatabaseTarget | null;

/** The proxy's key of a pool: (database as the client names it, server user, server, its dbname). */
export function poolKey(database: string, user: string, host: string, port: number, dbname: string): string {
  return `${database}\0${user}\0${host}:${port}/${dbname}`;
}
