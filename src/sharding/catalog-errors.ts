/**
 * What a catalog rule says when a change is refused: a value, not an exception (refusals are
 * expected outcomes of user SQL such as `create_distributed_table`). Its shape is the ErrorSpec
 * of protocol/error-response.ts, so the proxy turns it into an ErrorResponse with makeError().
 * Messages and SQLSTATEs are Citus's where Citus has the same refusal (src/backend/distributed/
 * commands/create_distributed_table.c, utils/colocation_utils.c, commands/alter_table.c). Citus
 * raises several of them without an errcode, which PostgreSQL reports as XX000; we keep that, so
 * a client's error handling matches Citus's.
 *
 * A stored catalog that cannot be read is a different thing — a broken store, not a user
 * mistake — and is thrown as a CatalogFormatError.
 */
import { ErrorCodes, PgscaleError } from '../errors.js';

export interface CatalogError {
  readonly kind: 'catalog-error';
  readonly severity: 'ERROR';
  readonly sqlstate: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

export function isCatalogError(x: unknown): x is CatalogError {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'catalog-error';
}

/** Thrown by decode() and the catalog store for a stored value that is not a valid catalog. */
export class CatalogFormatError extends PgscaleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.INTERNAL, message, options);
  }
}

function err(sqlstate: string, message: string, detail?: string, hint?: string): CatalogError {
  const e: { -readonly [K in keyof CatalogError]: CatalogError[K] } = {
    kind: 'catalog-error',
    severity: 'ERROR',
    sqlstate,
    message,
  };
  if (detail !== undefined) e.detail = detail;
  if (hint !== undefined) e.hint = hint;
  return Object.freeze(e);
}

/** The largest shard count Citus accepts (MAX_SHARD_COUNT). */
export const MAX_SHARD_COUNT = 64000;

/** The refusals, one constructor each; table names as Citus prints them (get_rel_name: bare). */
export const catalogErrors = {
  alreadyDistributed: (name: string) => err('42P16', `table "${name}" is already distributed`),
  /** Citus's ErrorIfRelationIsAKnownShard: a shard (a partition on a group) is not a table. */
  isShard: (name: string) => err('XX000', `relation "${name}" is a shard relation`),
  shardCountOutOfRange: (n: number) =>
    err('XX000', `${n} is outside the valid range for parameter "shard_count" (1 .. ${MAX_SHARD_COUNT})`),
  shardCountWithTable: () =>
    err('XX000', 'Cannot use colocate_with with a table and shard_count at the same time'),
  notDistributed: (name: string) => err('XX000', `relation ${name} is not distributed`),
  replicationModelsDiffer: (source: string, target: string) =>
    err(
      'XX000',
      `cannot colocate tables ${source} and ${target}`,
      `Replication models don't match for ${source} and ${target}.`,
    ),
  typesDiffer: (source: string, target: string) =>
    err(
      'XX000',
      `cannot colocate tables ${source} and ${target}`,
      `Distribution column types don't match for ${source} and ${target}.`,
    ),
  noGroups: () =>
    err('22023', 'no worker nodes are available for placing shards', undefined, 'Add more worker nodes.'),
  undistributeNotDistributed: () =>
    err('XX000', 'cannot undistribute table because the table is not distributed'),
  /** pgscale's own: a column type whose partition hash the proxy does not compute (hash.ts). */
  unsupportedType: (name: string, column: string, type: string, supported: readonly string[]) =>
    err(
      '0A000',
      `cannot distribute relation: ${name}`,
      `The distribution column "${column}" has type ${type}; pgscale distributes by ${supported.join(', ')} only.`,
    ),
  invalidName: (text: string) => err('42602', `invalid name syntax`, `"${text}" is not a relation name.`),
  tooManyDots: (text: string) => err('42601', `improper relation name (too many dotted names): ${text}`),
  invalidParameter: (message: string) => err('22023', message),
  /** A group that still holds shards (or is group 0, home of the local tables) cannot leave. */
  groupInUse: (message: string) => err('55000', message),
  /**
   * A change planned on one catalog no longer fits the newer one it is committed to (another
   * change took its shard ids or its colocation): serialization_failure, so a client retries.
   */
  concurrentChange: (name: string, why: string) =>
    err(
      '40001',
      `the sharding catalog changed while distributing "${name}"`,
      `${why}.`,
      'Run the call again.',
    ),
} as const;
