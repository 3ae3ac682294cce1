/**
 * What shard moves leave behind, dropped (shard-move.ts): after one move (cleanupMove) — its
 * subscription and slot, publication and fence tables, and either the emptied source partitions
 * (it succeeded) or the target's tables (it did not) — and, at each job and each start, whatever
 * earlier moves could not clean up (sweepMoves).
 */
import type pg from 'pg';
import { shardNameOf } from './catalog-lookup.js';
import {
  BOUND,
  MOVE_SCHEMA,
  MoveError,
  colocatedTables,
  detachPartition,
  moveNames,
  shardRels,
} from './shard-move-parts.js';
import type { MoveEnv, MoveHold, MoveSpec, ShardRel } from './shard-move-parts.js';
import { quoteIdent, quoteLiteral } from './table-ddl.js';
import type { Catalog } from './types.js';

/**
 * Drops what a move made, on the groups' current primaries; never throws. After a move that
 * switched the catalog: the emptied source partitions too. After one that did not: the target's
 * tables (never attached) and the source's REPLICA IDENTITY FULL, back to its default.
 */
export async function cleanupMove<H extends MoveHold>(
  m: MoveSpec,
  env: Pick<MoveEnv<H>, 'connect' | 'catalogs'>,
  o: { succeeded: boolean },
): Promise<string[]> {
  const names = moveNames(m.id);
  const problems: string[] = [];
  const attempt = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (e) {
      problems.push(`${what}: ${(e as Error).message}`);
    }
  };
  const rels = shardRels(env.catalogs.current, m);
  let tgt: pg.Client | null = null;
  let src: pg.Client | null = null;
  try {
    await attempt(`connect to group ${m.to}`, async () => (tgt = await env.connect(m.to)));
    await attempt(`connect to group ${m.from}`, async () => (src = await env.connect(m.from)));
    const t = tgt as pg.Client | null;
    const s = src as pg.Client | null;
    if (t) {
      await attempt('drop the subscription', () => dropSubscription(t, names.sub));
      await attempt('drop the fence table', () => t.query(`DROP TABLE IF EXISTS ${names.fence}`));
      if (!o.succeeded)
        for (const r of rels) {
          await attempt(`drop ${r.shardName} on group ${m.to}`, async () => {
            const x = await t.query<{ attached: boolean }>(
              `SELECT relispartition AS attached FROM pg_class WHERE oid = to_regclass($1)`,
              [r.shard],
            );
            if (x.rows[0]?.attached === false) await t.query(`DROP TABLE ${r.shard}`);
          });
        }
    }
    if (s) {
      await attempt('drop the publication', () => s.query(`DROP PUBLICATION IF EXISTS ${names.pub}`));
      await attempt('drop the slot', () =>
        s.query(
          `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`,
          [names.slot],
        ),
      );
      await attempt('drop the fence table', () => s.query(`DROP TABLE IF EXISTS ${names.fence}`));
      for (const r of rels) {
        if (o.succeeded)
          await attempt(`drop ${r.shardName} on group ${m.from}`, () => retried(() => dropEmptied(s, r)));
        else
          await attempt(`replica identity of ${r.shardName}`, () =>
            s.query(
              `DO $$ BEGIN IF (SELECT relreplident FROM pg_class WHERE oid = to_regclass(${quoteLiteral(r.shard)})) = 'f' THEN EXECUTE 'ALTER TABLE ${r.shard.replace(/'/g, "''")} REPLICA IDENTITY DEFAULT'; END IF; END $$`,
            ),
          );
      }
    }
  } finally {
    for (const c of [tgt as pg.Client | null, src as pg.Client | null]) await c?.end().catch(() => undefined);
  }
  return problems;
}

/** DROP SUBSCRIPTION, also when its source cannot be reached (its slot is then dropped apart). */
async function dropSubscription(c: pg.Client, sub: string): Promise<void> {
  const r = await c.query(`SELECT 1 FROM pg_subscription WHERE subname = $1`, [sub]);
  if (r.rows.length === 0) return;
  await c.query(`SET lock_timeout = '10s'`);
  try {
    await c.query(`DROP SUBSCRIPTION ${sub}`);
  } catch {
    await c.query(`ALTER SUBSCRIPTION ${sub} DISABLE`);
    await c.query(`ALTER SUBSCRIPTION ${sub} SET (slot_name = NONE)`);
    await c.query(`DROP SUBSCRIPTION ${sub}`);
  }
}

/**
 * A drop under the application's load may meet a lock conflict or a deadlock (a reader across
 * groups, the global tables' rebuild): tried again a few times before it is left to the sweep.
 */
async function retried(f: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await f();
    } catch (e) {
      if (attempt >= 4) throw e;
      await new Promise((r) => setTimeout(r, 250 * attempt));
    }
  }
}

/** The source's emptied partition: detached without locking the other shards, then dropped. */
async function dropEmptied(s: pg.Client, r: ShardRel): Promise<void> {
  const x = await s.query<{ attached: boolean; n: boolean }>(
    `SELECT relispartition AS attached FROM pg_class WHERE oid = to_regclass($1)`,
    [r.shard],
  );
  const row = x.rows[0];
  if (!row) return;
  if (row.attached) {
    // Only an empty partition: its rows live on the target now (a prepared TRUNCATE not yet
    // committed keeps its lock, and this waits for it).
    const rows = await s.query(`SELECT 1 FROM ${r.shard} LIMIT 1`);
    if (rows.rows.length > 0) throw new MoveError(`${r.shardName} still holds rows; left in place`);
    await detachPartition(s, r.parent, r.shard);
  }
  await s.query(`DROP TABLE IF EXISTS ${r.shard}`);
}

/**
 * Drops what moves left behind on every group's current primary — subscriptions, publications,
 * logical slots and fence tables named `pgscale_move_*`, shard tables a move made on a target and
 * never attached — except those of the moves in `keep` (running). What a move could not clean up
 * (a group down at the time, a failover during it) goes at the next job. Never throws: the
 * problems are returned.
 */
export async function sweepMoves(
  env: Pick<MoveEnv, 'connect' | 'catalogs'>,
  keep: readonly string[],
): Promise<string[]> {
  const problems: string[] = [];
  const kept = new Set(keep.map((id) => `pgscale_move_${id}`));
  const catalog = env.catalogs.current;
  for (const g of catalog.groups) {
    let c: pg.Client | null = null;
    try {
      c = await env.connect(g);
      const subs = await c.query<{ name: string }>(
        `SELECT subname AS name FROM pg_subscription WHERE subname LIKE 'pgscale\\_move\\_%'`,
      );
      for (const { name } of subs.rows) if (!kept.has(name)) await dropSubscription(c, name);
      const pubs = await c.query<{ name: string }>(
        `SELECT pubname AS name FROM pg_publication WHERE pubname LIKE 'pgscale\\_move\\_%'`,
      );
      for (const { name } of pubs.rows)
        if (!kept.has(name)) await c.query(`DROP PUBLICATION ${quoteIdent(name)}`);
      await c.query(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
          WHERE slot_name LIKE 'pgscale\\_move\\_%' AND NOT active AND NOT (slot_name = ANY($1::text[]))`,
        [[...kept]],
      );
      const fences = await c.query<{ name: string }>(
        `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = '${MOVE_SCHEMA}' AND c.relkind = 'r'`,
      );
      for (const { name } of fences.rows)
        if (!kept.has(`pgscale_move_${name.replace(/^fence_/, '')}`))
          await c.query(`DROP TABLE IF EXISTS ${MOVE_SCHEMA}.${quoteIdent(name)}`);
      // A detach of an emptied partition that was interrupted: finished (the table stays; a
      // move back to this group drops it, and rows are never dropped here).
      const pending = await c.query<{ parent: string; shard: string }>(
        `SELECT inhparent::regclass::text AS parent, inhrelid::regclass::text AS shard
           FROM pg_inherits WHERE inhdetachpending`,
      );
      for (const p of pending.rows) await detachPartition(c, p.parent, p.shard);
      // A move's table on its target that never became the shard: not a partition, named as a
      // shard this group does not hold, carrying the move's bound constraint.
      const strays = await c.query<{ schema: string; name: string }>(
        `SELECT n.nspname AS schema, c.relname AS name FROM pg_constraint k
           JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE k.conname = '${BOUND}' AND NOT c.relispartition`,
      );
      if (keep.length === 0) {
        for (const s of strays.rows)
          await c.query(`DROP TABLE ${quoteIdent(s.schema)}.${quoteIdent(s.name)}`);
        for (const p of await dropDetachedElsewhere(c, catalog, g)) problems.push(`group ${g}: ${p}`);
      }
    } catch (e) {
      problems.push(`group ${g}: ${(e as Error).message}`);
    } finally {
      await c?.end().catch(() => undefined);
    }
  }
  return problems;
}

/**
 * A source's emptied partition whose drop failed after its detach (seen once under a write load
 * in a full test run; the cause was not kept): a shard table of a distributed table, no longer a
 * partition, on a group the catalog does not place that shard on. Dropped when empty; one that
 * holds rows is never dropped, only named.
 */
async function dropDetachedElsewhere(c: pg.Client, catalog: Catalog, group: string): Promise<string[]> {
  const names: string[] = [];
  for (const col of catalog.colocations.values()) {
    if (col.type === null) continue;
    for (const t of colocatedTables(catalog, col.id))
      col.placement.forEach((g, r) => {
        if (g !== group)
          names.push(
            `${quoteIdent(t.rel.schema)}.${quoteIdent(shardNameOf(t.rel.name, t.firstShardId + r))}`,
          );
      });
  }
  if (names.length === 0) return [];
  const found = await c.query<{ rel: string }>(
    `SELECT x AS rel FROM unnest($1::text[]) x JOIN pg_class k ON k.oid = to_regclass(x)
      WHERE k.relkind = 'r' AND NOT k.relispartition`,
    [names],
  );
  const problems: string[] = [];
  for (const { rel } of found.rows) {
    const rows = await c.query(`SELECT 1 FROM ${rel} LIMIT 1`);
    if (rows.rows.length > 0)
      problems.push(`${rel} is not a shard of this group but holds rows; left in place`);
    else await c.query(`DROP TABLE ${rel}`);
  }
  return problems;
}
