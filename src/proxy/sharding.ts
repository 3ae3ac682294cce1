/**
 * Sharded databases as the proxy sees them: what the program that owns the proxy (`pgscale up`)
 * gives it — per database, where a statement's shards are and how the Citus API calls are run —
 * and where each group's primary is. The session routes with it (session/shard-target.ts).
 */
import type { ColumnValue } from '../sharding/types.js';
import type { DatabaseTarget } from './database-target.js';
import type { ShardTarget } from './session/shard-target.js';

/** One sharded database: its catalog's routing and the Citus API calls. */
export interface DatabaseSharding {
  /** The catalog holds tables of this database (false: nothing to plan, routing as without sharding). */
  readonly active: boolean;
  /** Where `sql` runs with these parameters (null: not known yet). */
  target(sql: string, params: readonly (ColumnValue | null)[] | null): ShardTarget;
  /** `sql` is a Citus API call (`SELECT create_distributed_table(…)` …). */
  isApi(sql: string): boolean;
  /** Runs the API call `sql` for `user`: the replies, ending with ReadyForQuery 'I' (never rejects). */
  api(sql: string, user: string): Promise<Buffer[]>;
}

export interface ShardingHost {
  /** The sharding of `database`, or null when it has none. */
  forDatabase(database: string): DatabaseSharding | null;
  /** Where group `group`'s primary is for `database` (a target that follows the topology). */
  groupTarget(database: string, group: string): DatabaseTarget | null;
}
