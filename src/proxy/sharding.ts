/**
 * Sharded databases as the proxy sees them: what the program that owns the proxy (`pgscale up`)
 * gives it — per database, where a statement's shards are and how the Citus API calls are run —
 * and where each group's primary is. The session routes with it (session/shard-target.ts).
 */
import { encodeBackendMessage } from '../protocol/backend-messages.js';
import type { SessionSearchPath } from '../sharding/search-path.js';
import { buildErrorResponse } from '../protocol/error-response.js';
import type { EveryGroupWork } from '../sharding/every-group.js';
import type { CopyInStart, CopyInWork } from '../sharding/copy-in.js';
import type { ColumnValue } from '../sharding/types.js';
import { commandComplete, readyForQuery } from './rewrite.js';
import type { DatabaseTarget } from './database-target.js';
import type { ShardTarget } from './session/shard-target.js';
import type { ExplainNote } from './session/explain-note.js';
import type { TxDecider } from './session/multi-group.js';
import type { HeldLeg } from './shard-hold.js';

/** One sharded database: its catalog's routing and the Citus API calls. */
export interface DatabaseSharding {
  /** The catalog holds tables of this database (false: nothing to plan, routing as without sharding). */
  readonly active: boolean;
  /** Where `sql` runs with these parameters (null: not known yet), for a session's search_path. */
  target(sql: string, params: readonly (ColumnValue | null)[] | null, path?: SessionSearchPath): ShardTarget;
  /** `sql` is a Citus API call (`SELECT create_distributed_table(…)` …). */
  isApi(sql: string): boolean;
  /** Runs the API call `sql` for `user`: the replies, ending with ReadyForQuery 'I' (never rejects). */
  api(sql: string, user: string, searchPath?: string): Promise<Buffer[]>;
  /** Runs a statement on several groups for `user` (a 'host' target): replies as api()'s. */
  host(work: EveryGroupWork, user: string): Promise<Buffer[]>;
  /** Starts a COPY … FROM STDIN split by row for `user` (a 'copy' target). */
  copyIn(work: CopyInWork, user: string): Promise<CopyInStart>;
  /** The route EXPLAIN `sql` shows (session/shard-explain.ts), or null. */
  explain?(sql: string, params: readonly (ColumnValue | null)[]): ExplainNote | null;
  /** Records the decisions of transactions that wrote on several groups (session/multi-group.ts). */
  readonly decider?: TxDecider | null;
}

export interface ShardingHost {
  /**
   * The proxy that serves these databases tells which statements it has in flight on groups
   * (busy server legs), for a shard move's hold (shard-hold.ts).
   */
  attachProxy?(p: {
    inFlight(groups: readonly string[]): HeldLeg[];
    /** Group `group`'s replicas serve reads only once they have replayed `lsn` (a shard arrived). */
    readFloor(group: number, lsn: bigint): void;
  }): void;
  /** The sharding of `database`, or null when it has none. */
  forDatabase(database: string): DatabaseSharding | null;
  /** Where group `group`'s primary is for `database` (a target that follows the topology). */
  groupTarget(database: string, group: string): DatabaseTarget | null;
}

/** Type oids of the API functions' results. */
const TYPE_OIDS = { void: 2278, bigint: 20, text: 25 } as const;

/**
 * The replies of an API call that returned `value` in a column named `column` of type `type`
 * (one row, as `SELECT f(…)` gives), ending with ReadyForQuery 'I'. A void result is an empty
 * string, as PostgreSQL sends it.
 */
export function apiResult(column: string, type: keyof typeof TYPE_OIDS, value: string | null): Buffer[] {
  return [
    encodeBackendMessage({
      name: 'RowDescription',
      fields: [
        {
          name: column,
          tableOid: 0,
          columnAttr: 0,
          typeOid: TYPE_OIDS[type],
          typeSize: type === 'bigint' ? 8 : type === 'void' ? 4 : -1,
          typeModifier: -1,
          format: 0,
        },
      ],
    }),
    encodeBackendMessage({ name: 'DataRow', values: [value === null ? null : Buffer.from(value)] }),
    commandComplete('SELECT 1'),
    readyForQuery('I'),
  ];
}

/** The replies of an API call that failed: its error, then ReadyForQuery 'I'. */
export function apiError(sqlstate: string, message: string, detail?: string): Buffer[] {
  return [buildErrorResponse('ERROR', sqlstate, message, detail), readyForQuery('I')];
}
