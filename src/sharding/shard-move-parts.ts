/**
 * The words of a shard move (shard-move.ts) that its cleanup (shard-move-cleanup.ts) and the
 * controller's runner share: the move's spec and environment, the names of its objects, its
 * prepared transactions' names and their decision, the shards it carries, the checks before it.
 */
import type pg from 'pg';
import type { CatalogStore } from './catalog-store.js';
import { shardNameOf } from './catalog-lookup.js';
import { quoteIdent } from './table-ddl.js';
import type { Catalog, DistributedTable } from './types.js';

/** What the mover needs of the proxy's holds (proxy/shard-hold.ts); src/sharding may not import proxy. */
export interface MoveHold {
  readonly released: Promise<void>;
  fence(timeoutMs: number): Promise<boolean>;
}
export interface MoveHolds<H extends MoveHold = MoveHold> {
  hold(spec: { colocation: number; shards: readonly number[]; group: string; to: string }): H;
  release(h: H): void;
}

export interface MoveSpec {
  /** Short, [a-z0-9]: names the publication, subscription, slot and prepared transactions. */
  readonly id: string;
  readonly colocation: number;
  readonly shard: number;
  readonly from: string;
  readonly to: string;
}

export type MoveStep = 'prepare' | 'copy' | 'catchup' | 'cutover' | 'cleanup' | 'done';

export interface MoveProgress {
  readonly step: MoveStep;
  /** Bytes of the shards on the source, and on the target so far. */
  readonly sourceBytes?: number;
  readonly copiedBytes?: number;
  /** Apply lag measured by the last fence row (ms). */
  readonly lagMs?: number;
  /** Cutover attempt, and the write pause of the one that committed (ms). */
  readonly attempt?: number;
  readonly pauseMs?: number;
  readonly note?: string;
}

export interface MoveEnv<H extends MoveHold = MoveHold> {
  readonly catalogs: Pick<CatalogStore, 'current' | 'update'>;
  /** A new superuser session on the current primary of `group` (application database). */
  connect(group: string): Promise<pg.Client>;
  /** The connection string a subscription on another group uses to reach `group`'s primary (no password in it). */
  conninfo(group: string): string;
  readonly holds: MoveHolds<H>;
  progress(p: MoveProgress): void;
  /** The shard is on `group` from WAL position `lsn` there (its replicas must replay it to serve reads). */
  arrived?(group: string, lsn: string): void;
  readonly signal?: AbortSignal;
  readonly timing?: Partial<MoveTiming>;
}

export interface MoveTiming {
  /** How long the hold waits for transactions on the source to leave the shard. */
  drainMs: number;
  /** lock_timeout of the source's lock at cutover. */
  lockMs: number;
  /** How long the fence row may take to reach the target at cutover. */
  fenceMs: number;
  /** Cutover attempts before the move fails (each holds for at most drain + lock + fence). */
  attempts: number;
  /** The whole copy (initial sync) may take this long. */
  copyMs: number;
}

export const MOVE_SCHEMA = 'pgscale_move';
/** The constraint that makes the ATTACH scan-free. */
export const BOUND = 'pgscale_move_bound';

export class MoveError extends Error {
  constructor(
    message: string,
    readonly sqlstate = '55000',
  ) {
    super(message);
  }
}

/** Names of a move's objects. */
export function moveNames(id: string): { pub: string; sub: string; slot: string; fence: string } {
  const base = `pgscale_move_${id}`;
  return { pub: base, sub: base, slot: base, fence: `${MOVE_SCHEMA}.${quoteIdent(`fence_${id}`)}` };
}

export function moveGid(m: MoveSpec): string {
  return `pgscale:move:${m.id}:${m.colocation}:${m.shard}:${m.to}`;
}

/** Recovery's decision for a prepared transaction of a move (null: not a move's). */
export function decideMove(gid: string, catalog: Catalog): 'commit' | 'rollback' | null {
  const m = /^pgscale:move:([a-z0-9]+):(\d+):(\d+):(.+)$/.exec(gid);
  if (!m) return null;
  const c = catalog.colocations.get(Number(m[2]));
  return c?.placement[Number(m[3])] === m[4] ? 'commit' : 'rollback';
}

/** The tables of colocation `id` (distributed), the first distributed first. */
export function colocatedTables(catalog: Catalog, id: number): DistributedTable[] {
  return [...catalog.tables.values()]
    .filter((t) => t.kind === 'distributed' && t.colocationId === id)
    .sort((a, b) => a.firstShardId - b.firstShardId);
}

export interface ShardRel {
  readonly table: DistributedTable;
  /** schema-qualified, quoted */
  readonly parent: string;
  readonly shard: string;
  readonly shardName: string;
}

export function shardRels(catalog: Catalog, m: MoveSpec): ShardRel[] {
  return colocatedTables(catalog, m.colocation).map((t) => {
    const name = shardNameOf(t.rel.name, t.firstShardId + m.shard);
    return {
      table: t,
      parent: `${quoteIdent(t.rel.schema)}.${quoteIdent(t.rel.name)}`,
      shard: `${quoteIdent(t.rel.schema)}.${quoteIdent(name)}`,
      shardName: name,
    };
  });
}

/** Checks that `m` can start on this catalog: the shard is on `from`, `to` is another group. */
export function checkMove(catalog: Catalog, m: MoveSpec): MoveError | null {
  const c = catalog.colocations.get(m.colocation);
  if (c === undefined || c.type === null)
    return new MoveError(`colocation ${m.colocation} does not exist`, '22023');
  if (!Number.isInteger(m.shard) || m.shard < 0 || m.shard >= c.shardCount)
    return new MoveError(`colocation ${m.colocation} has no shard ${m.shard}`, '22023');
  if (c.placement[m.shard] !== m.from)
    return new MoveError(`the shard is on group ${c.placement[m.shard]}, not ${m.from}`, '22023');
  if (!catalog.groups.includes(m.to)) return new MoveError(`there is no group ${m.to}`, '22023');
  if (m.to === m.from) return new MoveError(`the shard is already on group ${m.to}`, '22023');
  if (colocatedTables(catalog, m.colocation).length === 0)
    return new MoveError(`colocation ${m.colocation} has no table`, '22023');
  return null;
}

/**
 * Detaches an emptied partition without locking its siblings (DETACH … CONCURRENTLY). A detach
 * interrupted between its two transactions (its session ended, a deadlock, a cancel) leaves the
 * partition "pending detach", and PostgreSQL then refuses another CONCURRENTLY: such a detach is
 * finished with FINALIZE. Nothing happens if `shard` is not a partition.
 */
export async function detachPartition(c: pg.Client, parent: string, shard: string): Promise<void> {
  const pending = async () =>
    (
      await c.query<{ p: boolean }>(
        `SELECT inhdetachpending AS p FROM pg_inherits WHERE inhrelid = to_regclass($1)`,
        [shard],
      )
    ).rows[0]?.p;
  const p = await pending();
  if (p === undefined) return;
  if (!p) {
    try {
      await c.query(`ALTER TABLE ${parent} DETACH PARTITION ${shard} CONCURRENTLY`);
      return;
    } catch (e) {
      // An error after the detach went through (its second transaction): done. One that left it
      // half done: finished below. Any other: the detach did not happen.
      const now = await pending();
      if (now === undefined) return;
      if (now !== true) throw e;
    }
  }
  await c.query(`ALTER TABLE ${parent} DETACH PARTITION ${shard} FINALIZE`);
}
