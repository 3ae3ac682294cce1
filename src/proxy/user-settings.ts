/**
 * Per-user pool settings (PgBouncer's [users]): a user's pool_size and pool_mode override its
 * database's, which override the proxy's defaults; max_user_connections caps the user's server
 * connections on each server across its databases (0: no limit). `pgscale up` fills the table
 * from the config's `users:`.
 */
import type { ProxyConfig } from '../config/schema.js';
import type { PoolMode } from './types.js';

export interface UserPoolSettings {
  readonly poolSize?: number;
  readonly poolMode?: PoolMode;
  readonly maxUserConnections?: number;
}

export type UserSettingsTable = ReadonlyMap<string, UserPoolSettings>;

/** PgBouncer's precedence: the user's setting, else the database's, else the proxy's default. */
export function effectivePool(
  user: UserPoolSettings | undefined,
  database: { readonly poolSize?: number; readonly poolMode?: PoolMode },
  config: Pick<ProxyConfig, 'default_pool_size' | 'pool_mode'>,
): { size: number; mode: PoolMode } {
  return {
    size: user?.poolSize ?? database.poolSize ?? config.default_pool_size,
    mode: user?.poolMode ?? database.poolMode ?? config.pool_mode,
  };
}
