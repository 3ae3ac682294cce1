/**
 * The application users and databases of a cluster, as the config declares them: app.user and
 * app.database (the defaults, always there) plus the top-level `users:` and `databases:` maps.
 * Everything that creates, grants or serves them (bootstrap, the proxy, `psql --user`) reads
 * them through here, so the implicit app entries and the home groups are decided in one place;
 * crossChecks reports the contradictions (an owner nobody declared, two homes for a database…)
 * as messages naming the keys.
 */
import type { Config, PoolModeName } from './schema.js';

/** Role names pgscale keeps for itself: never an application user. */
export const REPLICATION_ROLE = 'replicator';
export const AUTH_ROLE = 'pgscale_auth';
/** Names the proxy answers itself (its admin console) or PostgreSQL keeps. */
const RESERVED_DATABASES = new Set(['pgscale', 'pgbouncer', 'postgres', 'template0', 'template1']);

export interface AppUser {
  readonly name: string;
  /** Where its password comes from: generated into secrets.json, or a file. */
  readonly passwordFile: string | null;
  /** Databases it may connect to (owned ones included). */
  readonly databases: readonly string[];
  readonly poolSize?: number;
  readonly poolMode?: PoolModeName;
  readonly maxUserConnections: number;
}

export interface AppDatabase {
  readonly name: string;
  readonly owner: string;
  readonly group: number;
  readonly poolSize?: number;
  readonly poolMode?: PoolModeName;
  /** Declared under databases: (CONNECT then goes only to its owner and its users). */
  readonly declared: boolean;
}

/** The group a database lives in: databases.<name>.group, else the group listing it, else 0. */
export function homeGroup(config: Config, database: string): number {
  const declared = Object.hasOwn(config.databases, database) ? config.databases[database]?.group : undefined;
  if (declared !== undefined) return declared;
  const i = config.groups.findIndex((g) => g.databases.includes(database));
  return i < 0 ? 0 : i;
}

/** Every application database: app.database first, then the declared ones. */
export function appDatabases(config: Config): AppDatabase[] {
  const { app } = config;
  const names = [app.database, ...Object.keys(config.databases).filter((d) => d !== app.database)];
  return names.map((name) => {
    const d = Object.hasOwn(config.databases, name) ? config.databases[name] : undefined;
    return {
      name,
      owner: d?.owner ?? app.user,
      group: homeGroup(config, name),
      declared: d !== undefined,
      ...(d?.pool_size !== undefined ? { poolSize: d.pool_size } : {}),
      ...(d?.pool_mode !== undefined ? { poolMode: d.pool_mode } : {}),
    };
  });
}

/** Every application user: app.user first, then the declared ones. */
export function appUsers(config: Config): AppUser[] {
  const { app } = config;
  const dbs = appDatabases(config);
  const names = [app.user, ...Object.keys(config.users).filter((u) => u !== app.user)];
  return names.map((name) => {
    const u = Object.hasOwn(config.users, name) ? config.users[name] : undefined;
    const owned = dbs.filter((d) => d.owner === name).map((d) => d.name);
    return {
      name,
      passwordFile: u?.password_file ?? null,
      databases: [...new Set([...owned, ...(u?.databases ?? [])])],
      maxUserConnections: u?.max_user_connections ?? 0,
      ...(u?.pool_size !== undefined ? { poolSize: u.pool_size } : {}),
      ...(u?.pool_mode !== undefined ? { poolMode: u.pool_mode } : {}),
    };
  });
}

/** Contradictions between users:, databases:, app: and groups[].databases, each naming its key. */
export function userProblems(config: Config): string[] {
  const problems: string[] = [];
  const { app, postgres } = config;
  const users = new Set([app.user, ...Object.keys(config.users)]);
  const dbs = new Set([app.database, ...Object.keys(config.databases)]);
  for (const [name, u] of Object.entries(config.users)) {
    if (name === postgres.superuser || name === REPLICATION_ROLE || name === AUTH_ROLE) {
      problems.push(`users.${name}: "${name}" is a role pgscale keeps for itself; choose another name`);
    }
    if (name === app.user && u.password_file !== undefined) {
      problems.push(
        `users.${name}.password_file: "${name}" is app.user, whose password pgscale generates into secrets.json; remove password_file`,
      );
    }
    u.databases.forEach((d, i) => {
      if (!dbs.has(d)) {
        problems.push(
          `users.${name}.databases[${i}]: "${d}" is not declared: add it under databases: (or use app.database "${app.database}")`,
        );
      }
    });
  }
  for (const [name, d] of Object.entries(config.databases)) {
    if (RESERVED_DATABASES.has(name)) {
      problems.push(`databases.${name}: "${name}" is reserved (PostgreSQL's or the proxy's admin console)`);
    }
    if (name === app.database && d.owner !== undefined && d.owner !== app.user) {
      problems.push(
        `databases.${name}.owner: "${name}" is app.database, owned by app.user "${app.user}", not "${d.owner}"`,
      );
    } else if (d.owner !== undefined && !users.has(d.owner)) {
      problems.push(`databases.${name}.owner: "${d.owner}" is not declared under users: (nor app.user)`);
    }
    if (d.group === undefined) continue;
    if (d.group >= config.groups.length) {
      problems.push(
        `databases.${name}.group: ${d.group} does not exist (groups: has ${config.groups.length}, numbered from 0)`,
      );
    }
    const listed = config.groups.findIndex((g) => g.databases.includes(name));
    if (listed >= 0 && listed !== d.group) {
      problems.push(
        `databases.${name}.group: ${d.group} contradicts groups[${listed}].databases, which homes "${name}" in group ${listed}; keep one`,
      );
    }
  }
  return problems;
}
