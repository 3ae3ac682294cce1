/**
 * Where a client's database goes. Standalone (`pgscale proxy`): the `proxy.databases` table, with
 * `*` as the fallback, as in PgBouncer (pools made through `*` are on demand: freed when unused).
 * Inside `pgscale up`: the current primary of the database's home group from the topology (group
 * 0 unless the config homes it elsewhere; distributed tables will route by their shards later),
 * database name unchanged, for the databases the cluster exposes only.
 */
import type { ProxyConfig } from '../config/schema.js';
import type { TopologyView } from '../topology/topology.js';
import type { DatabaseResolver } from './proxy-server.js';

export function databasesResolver(cfg: ProxyConfig): DatabaseResolver {
  return (db) => {
    const named = cfg.databases[db];
    const d = named ?? cfg.databases['*'];
    if (!d) return null;
    return {
      ...(named ? {} : { onDemand: true }),
      host: d.host,
      port: d.port,
      dbname: d.dbname ?? db,
      ...(d.user !== undefined ? { user: d.user } : {}),
      ...(d.password !== undefined ? { password: d.password } : {}),
      ...(d.pool_size !== undefined ? { poolSize: d.pool_size } : {}),
      ...(d.pool_mode !== undefined ? { poolMode: d.pool_mode } : {}),
      replicas: d.replicas,
    };
  };
}

/**
 * `served`: the cluster's databases clients may reach (app.database and proxy.exposed_databases);
 * `*` among them serves every database, each pool then made on demand and freed when unused. Any
 * other name is refused with 3D000 (after authentication), like a database that does not exist.
 * `homeOf`: the replication group a database lives in (its pools follow that group's primary).
 */
export function topologyResolver(
  view: TopologyView,
  served: readonly string[],
  fallback?: DatabaseResolver,
  homeOf: (db: string) => number = () => 0,
): DatabaseResolver {
  const named = new Set(served.filter((d) => d !== '*'));
  const any = served.includes('*');
  // While a failover is under way the topology names no primary; logins go on against the last
  // one published (the pool is held and follows the new primary once published) instead of
  // failing. The view remembers it from every publication, not only the ones a login happened to
  // see: a stale one would name a node that has since become a replica.
  return (db) => {
    const explicit = fallback?.(db);
    if (explicit) return explicit;
    if (!named.has(db) && !any) return null;
    const group = homeOf(db);
    const primary = view.lastPrimary(group);
    if (!primary) return null;
    return {
      host: primary.host,
      port: primary.port,
      dbname: db,
      replicas: view.current().groups[group]?.replicas ?? [],
      followsTopology: true,
      group,
      ...(named.has(db) ? {} : { onDemand: true }),
    };
  };
}
