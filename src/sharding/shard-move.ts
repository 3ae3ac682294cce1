/**
 * One shard move (issue #17): shard `r` of a colocation — every colocated table's partition of
 * remainder `r` — goes from group `from` to group `to` while the application keeps writing.
 *
 * 1. **prepare**: on the target, a plain table per shard shaped like the distributed table
 *    (`LIKE … INCLUDING ALL` but identity, its foreign keys), with a CHECK constraint that is its
 *    partition bound (`satisfies_hash_partition`): every copied row is checked as it arrives, and
 *    the ATTACH at cutover needs no scan ("implied by existing constraints"). It is not attached
 *    yet, so the target's reads do not see it. A shard without a primary key is published with
 *    REPLICA IDENTITY FULL (UPDATE and DELETE could not be replicated otherwise).
 * 2. **copy**: a publication of the shards (and of a fence table of this move) on the source, a
 *    subscription on the target: PostgreSQL copies the rows and then streams the changes.
 * 3. **catch up**: until a row written to the fence table on the source shows on the target
 *    within CATCHUP_OK_MS (logical replication applies in commit order).
 * 4. **cutover** (shard-hold.ts): the proxy holds new statements for these shards; the mover waits
 *    until no transaction on the source holds them, locks them there (ACCESS EXCLUSIVE), writes a
 *    fence row and waits for it on the target — every change is there then. The target ATTACHes
 *    its tables and the source TRUNCATEs its shards, both PREPAREd (two-phase commit); the
 *    catalog's placement is switched by compare-and-set (placeShard) — the commit point; both
 *    commit; the hold ends and the held statements go to the target.
 * 5. **cleanup**: subscription, slot, publication and fence tables dropped; the emptied source
 *    partitions detached (CONCURRENTLY: no lock on the other shards) and dropped. After a failure
 *    the target's tables are dropped instead, and the source is left as it was.
 *
 * Prepared transactions are named `pgscale:move:<id>:<colocation>:<remainder>:<to>`: recovery
 * (decideMove) commits them when the catalog places the shard on `to`, else rolls them back.
 */
import type pg from 'pg';
import { isCatalogError, placeShard } from './catalog.js';
import { quoteIdent, quoteLiteral } from './table-ddl.js';
import { cleanupMove } from './shard-move-cleanup.js';
import {
  BOUND,
  checkMove,
  detachPartition,
  MOVE_SCHEMA,
  MoveError,
  moveGid,
  moveNames,
  shardRels,
} from './shard-move-parts.js';
import type { MoveEnv, MoveHold, MoveSpec, MoveTiming, ShardRel } from './shard-move-parts.js';

export * from './shard-move-parts.js';
export { cleanupMove, sweepMoves } from './shard-move-cleanup.js';

/**
 * Fault injection for the tests of interrupted moves (never set in use):
 * `PGSCALE_FAULT_MOVE=<copy|locked|prepared|switched>:<ms>` stops every move there for that long,
 * after saying so on stderr (the controller's log): `copy` once the subscription copies, `locked`
 * with the source's shards locked at cutover, `prepared` with both groups' parts prepared (the
 * catalog not switched yet), `switched` after the catalog's switch (nothing committed yet).
 */
const FAULT = /^(copy|locked|prepared|switched):(\d+)$/.exec(process.env.PGSCALE_FAULT_MOVE ?? '');

async function faultPoint(at: string, id: string): Promise<void> {
  if (FAULT === null || FAULT[1] !== at) return;
  process.stderr.write(`pgscale fault point: move ${at} ${id}\n`);
  await sleep(Number(FAULT[2]));
}

const TIMING: MoveTiming = { drainMs: 3000, lockMs: 1000, fenceMs: 5000, attempts: 6, copyMs: 6 * 3600_000 };
/** Catch-up is done when a fence row crosses within this. */
const CATCHUP_OK_MS = 150;
class Retry extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new MoveError('the move was cancelled', '57014');
}

/**
 * Moves one shard (with its colocated shards). Resolves with the write pause of its cutover (ms);
 * rejects with a MoveError (nothing changed: the shard stays on `from`) — or, if the catalog's
 * compare-and-set had an unknown outcome, with the store's error (recovery finishes the move
 * either way, by what the catalog says).
 */
export async function moveShard<H extends MoveHold>(
  m: MoveSpec,
  env: MoveEnv<H>,
): Promise<{ pauseMs: number }> {
  const timing = { ...TIMING, ...env.timing };
  const catalog = env.catalogs.current;
  const bad = checkMove(catalog, m);
  if (bad) throw bad;
  const rels = shardRels(catalog, m);
  const modulus = catalog.colocations.get(m.colocation)!.shardCount;
  const names = moveNames(m.id);
  const clients: pg.Client[] = [];
  const open = async (g: string) => {
    const c = await env.connect(g);
    clients.push(c);
    return c;
  };
  let switched = false;
  try {
    const src = await open(m.from);
    const tgt = await open(m.to);
    env.progress({ step: 'prepare' });
    await prepareTarget(src, tgt, rels, modulus, m, names.fence);
    checkAbort(env.signal);

    env.progress({ step: 'copy' });
    await src.query(
      `CREATE PUBLICATION ${names.pub} FOR TABLE ${[...rels.map((r) => r.shard), names.fence].join(', ')} WITH (publish = 'insert, update, delete')`,
    );
    await tgt.query(
      `CREATE SUBSCRIPTION ${names.sub} CONNECTION ${quoteLiteral(env.conninfo(m.from))} PUBLICATION ${names.pub} WITH (slot_name = ${quoteLiteral(names.slot)})`,
    );
    await faultPoint('copy', m.id);
    await waitCopied(src, tgt, rels, { sub: names.sub, to: m.to, id: m.id }, env, timing.copyMs);

    env.progress({ step: 'catchup' });
    for (let i = 0; ; i++) {
      checkAbort(env.signal);
      const lag = await fenceLag(src, tgt, names.fence, `catchup-${i}`, 60_000, env.signal);
      env.progress({ step: 'catchup', lagMs: lag });
      if (lag <= CATCHUP_OK_MS || i >= 50) break;
    }

    const srcAux = await open(m.from);
    let pauseMs = -1;
    for (let attempt = 1; ; attempt++) {
      checkAbort(env.signal);
      env.progress({ step: 'cutover', attempt });
      try {
        pauseMs = await cutover(
          m,
          rels,
          modulus,
          names,
          { src, srcAux, tgt },
          env,
          timing,
          () => (switched = true),
        );
        break;
      } catch (e) {
        if (!(e instanceof Retry) || attempt >= timing.attempts) {
          if (e instanceof Retry)
            throw new MoveError(`the cutover did not succeed in ${attempt} attempts: ${e.message}`);
          throw e;
        }
        env.progress({ step: 'cutover', attempt, note: e.message });
        await sleep(200 * attempt);
      }
    }
    env.progress({ step: 'cleanup', pauseMs });
    const problems = await cleanupMove(m, env, { succeeded: true });
    if (problems.length > 0) env.progress({ step: 'cleanup', note: `cleanup: ${problems.join('; ')}` });
    env.progress({ step: 'done', pauseMs });
    return { pauseMs };
  } catch (e) {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    clients.length = 0;
    if (!switched) {
      // Never throws; what it could not drop is said (the next job's sweep drops it).
      const problems = await cleanupMove(m, env, { succeeded: false });
      if (problems.length > 0) env.progress({ step: 'cleanup', note: `cleanup: ${problems.join('; ')}` });
    }
    throw e;
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

async function prepareTarget(
  src: pg.Client,
  tgt: pg.Client,
  rels: readonly ShardRel[],
  modulus: number,
  m: MoveSpec,
  fence: string,
): Promise<void> {
  for (const c of [src, tgt]) {
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${MOVE_SCHEMA}`);
    await c.query(`CREATE TABLE IF NOT EXISTS ${fence} (token text PRIMARY KEY)`);
  }
  for (const r of rels) {
    const exists = await tgt.query<{ attached: boolean }>(
      `SELECT c.relispartition AS attached FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2`,
      [r.table.rel.schema, r.shardName],
    );
    if (exists.rows[0]?.attached === true) {
      // An emptied partition an earlier move from this group could not drop (its source part was
      // committed late, by recovery): dropped now; one with rows is a real shard.
      const rows = await tgt.query(`SELECT 1 FROM ${r.shard} LIMIT 1`);
      if (rows.rows.length > 0) throw new MoveError(`group ${m.to} already holds shard ${r.shardName}`);
      await detachPartition(tgt, r.parent, r.shard);
    }
    // A table of an earlier attempt that was not cleaned up (never attached: not the shard).
    if (exists.rows.length > 0) await tgt.query(`DROP TABLE ${r.shard}`);
    const info = await tgt.query<{ oid: string; owner: string }>(
      `SELECT c.oid::text AS oid, pg_get_userbyid(c.relowner) AS owner FROM pg_class c WHERE c.oid = $1::regclass`,
      [r.parent],
    );
    const parent = info.rows[0];
    if (!parent) throw new MoveError(`group ${m.to} has no table ${r.parent}`);
    await tgt.query(
      `CREATE TABLE ${r.shard} (LIKE ${r.parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES` +
        ` INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS INCLUDING STATISTICS,` +
        ` CONSTRAINT ${BOUND} CHECK (satisfies_hash_partition(${quoteLiteral(parent.oid)}::oid, ${modulus}, ${m.shard}, ${quoteIdent(r.table.column!)})))`,
    );
    await tgt.query(`ALTER TABLE ${r.shard} OWNER TO ${quoteIdent(parent.owner)}`);
    // The parent's foreign keys, made here already: ATTACH then takes them over instead of
    // checking every row under the cutover's lock.
    const fks = await tgt.query<{ name: string; def: string }>(
      `SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = $1::regclass AND contype = 'f' AND conparentid = 0`,
      [r.parent],
    );
    for (const fk of fks.rows)
      await tgt.query(`ALTER TABLE ${r.shard} ADD CONSTRAINT ${quoteIdent(fk.name)} ${fk.def} NOT VALID`);
    // UPDATE and DELETE are replicated by the replica identity: a shard without a key uses FULL.
    const ident = await src.query<{ identity: string; keyed: boolean }>(
      `SELECT c.relreplident AS identity,
              EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)) AS keyed
         FROM pg_class c WHERE c.oid = $1::regclass`,
      [r.shard],
    );
    const row = ident.rows[0];
    if (row && row.identity === 'd' && !row.keyed)
      await src.query(`ALTER TABLE ${r.shard} REPLICA IDENTITY FULL`);
  }
}

async function sizeOf(c: pg.Client, rels: readonly ShardRel[]): Promise<number> {
  const r = await c.query<{ n: string }>(
    `SELECT coalesce(sum(pg_table_size(x::regclass)), 0)::int8::text AS n FROM unnest($1::text[]) x`,
    [rels.map((r) => r.shard)],
  );
  return Number(r.rows[0]?.n ?? 0);
}

/** Waits until every table of the subscription is synchronized ('r'), reporting the bytes copied. */
async function waitCopied(
  src: pg.Client,
  tgt: pg.Client,
  rels: readonly ShardRel[],
  o: { sub: string; to: string; id: string },
  env: MoveEnv<MoveHold>,
  copyMs: number,
): Promise<void> {
  const { sub } = o;
  const deadline = Date.now() + copyMs;
  const sourceBytes = await sizeOf(src, rels);
  let lastReport = 0;
  for (;;) {
    checkAbort(env.signal);
    const r = await tgt.query<{ n: string; ready: string }>(
      `SELECT count(*)::text AS n, count(*) FILTER (WHERE sr.srsubstate = 'r')::text AS ready
         FROM pg_subscription_rel sr JOIN pg_subscription s ON s.oid = sr.srsubid WHERE s.subname = $1`,
      [sub],
    );
    const n = Number(r.rows[0]?.n ?? 0);
    if (n > 0 && r.rows[0]?.ready === String(n)) {
      env.progress({ step: 'copy', sourceBytes, copiedBytes: await sizeOf(tgt, rels) });
      return;
    }
    // A subscription that cannot work (the target's disk full, a table that cannot take the
    // rows) fails again and again: stop then, rather than wait for the deadline.
    if (Date.now() - lastReport > 1000) {
      const errors = await subscriptionErrors(tgt, sub);
      if (errors >= MAX_SUBSCRIPTION_ERRORS) {
        const why = await writeProbe(tgt, rels, o.id);
        throw new MoveError(
          `the subscription on group ${o.to} failed ${errors} times` +
            (why ? `; a write there fails: ${why}` : ` (group ${o.to}'s server log says why)`),
        );
      }
      lastReport = Date.now();
      env.progress({ step: 'copy', sourceBytes, copiedBytes: await sizeOf(tgt, rels) });
    }
    if (Date.now() > deadline) throw new MoveError(`the copy did not finish within ${copyMs / 1000} s`);
    await sleep(100);
  }
}

/** Worker failures a subscription may have before its move gives up. */
const MAX_SUBSCRIPTION_ERRORS = 5;

/** How often the subscription's workers failed (pg_stat_subscription_stats, PostgreSQL 15+). */
async function subscriptionErrors(tgt: pg.Client, sub: string): Promise<number> {
  const r = await tgt
    .query<{ n: string }>(
      `SELECT (apply_error_count + sync_error_count)::text AS n FROM pg_stat_subscription_stats WHERE subname = $1`,
      [sub],
    )
    .catch(() => null);
  return Number(r?.rows[0]?.n ?? 0);
}

/**
 * Why a subscription's workers fail, when it is the target's disk: PostgreSQL tells their errors
 * only in its server log, so a few hundred kB are written where the move's tables are (their
 * tablespace) and dropped. The error of that write ("could not extend file …: No space left on
 * device"), or null when it works (the cause is another).
 */
async function writeProbe(tgt: pg.Client, rels: readonly ShardRel[], id: string): Promise<string | null> {
  const probe = `${MOVE_SCHEMA}.${quoteIdent(`probe_${id}`)}`;
  try {
    const spaces = await tgt.query<{ spc: string }>(
      `SELECT DISTINCT t.spcname AS spc FROM pg_class c
         JOIN pg_tablespace t ON t.oid = coalesce(nullif(c.reltablespace, 0),
           (SELECT dattablespace FROM pg_database WHERE datname = current_database()))
        WHERE c.oid = ANY($1::regclass[])`,
      [rels.map((r) => r.shard)],
    );
    for (const { spc } of spaces.rows) {
      await tgt.query(`DROP TABLE IF EXISTS ${probe}`);
      await tgt.query(`CREATE TABLE ${probe} (b text) TABLESPACE ${quoteIdent(spc)}`);
      await tgt.query(`INSERT INTO ${probe} SELECT md5(g::text) FROM generate_series(1, 4000) g`);
    }
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await tgt.query(`DROP TABLE IF EXISTS ${probe}`).catch(() => undefined);
  }
}

/** Writes a fence row on the source and waits until the target has it: the apply lag (ms). */
async function fenceLag(
  src: pg.Client,
  tgt: pg.Client,
  fence: string,
  token: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<number> {
  const t0 = Date.now();
  await src.query(`INSERT INTO ${fence} (token) VALUES ($1) ON CONFLICT DO NOTHING`, [token]);
  for (;;) {
    const r = await tgt.query(`SELECT 1 FROM ${fence} WHERE token = $1`, [token]);
    if (r.rows.length > 0) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs)
      throw new Retry(`the target did not apply the fence row within ${timeoutMs} ms`);
    if (signal?.aborted) throw new MoveError('the move was cancelled', '57014');
    await sleep(2);
  }
}

async function cutover<H extends MoveHold>(
  m: MoveSpec,
  rels: readonly ShardRel[],
  modulus: number,
  names: ReturnType<typeof moveNames>,
  c: { src: pg.Client; srcAux: pg.Client; tgt: pg.Client },
  env: MoveEnv<H>,
  timing: MoveTiming,
  onSwitched: () => void,
): Promise<number> {
  const gid = moveGid(m);
  const shards = rels.map((r) => r.shard);
  const ids = rels.map((r) => r.table.firstShardId + m.shard);
  const hold = env.holds.hold({ colocation: m.colocation, shards: ids, group: m.from, to: m.to });
  const t0 = Date.now();
  let srcTx = false;
  let tgtTx = false;
  let prepared: pg.Client[] = [];
  try {
    // No transaction on the source holds the shards any more (those let through finish).
    const oids = await c.srcAux.query<{ oid: string }>(
      `SELECT x::regclass::oid::text AS oid FROM unnest($1::text[]) x`,
      [shards],
    );
    const list = oids.rows.map((r) => r.oid);
    for (const deadline = Date.now() + timing.drainMs; ;) {
      const r = await c.srcAux.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.relation = ANY($1::oid[]) AND l.pid <> pg_backend_pid() AND a.backend_type = 'client backend'`,
        [list],
      );
      if (r.rows[0]?.n === '0') break;
      if (Date.now() > deadline)
        throw new Retry(`transactions on group ${m.from} kept the shard for ${timing.drainMs} ms`);
      await sleep(3);
    }
    if (!(await hold.fence(timing.drainMs))) throw new Retry('statements let through did not finish');
    await c.src.query('BEGIN');
    srcTx = true;
    await c.src.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(timing.lockMs))}`);
    try {
      await c.src.query(`LOCK TABLE ${shards.join(', ')} IN ACCESS EXCLUSIVE MODE`);
    } catch (e) {
      throw new Retry(`could not lock the shard on group ${m.from}: ${(e as Error).message}`);
    }
    await faultPoint('locked', m.id);
    // Every change to the shard is committed before this row: once it is on the target, they are.
    await fenceLag(c.srcAux, c.tgt, names.fence, `cutover-${t0}`, timing.fenceMs, undefined);
    // Belt and braces: a statement that reached the source past the hold waits for the lock and
    // would run after the TRUNCATE. Give the shard back to it and try again.
    const waiting = await c.srcAux.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM pg_locks WHERE relation = ANY($1::oid[]) AND NOT granted`,
      [list],
    );
    if (waiting.rows[0]?.n !== '0')
      throw new Retry(`${waiting.rows[0]?.n} statements on group ${m.from} were past the hold`);
    await c.tgt.query('BEGIN');
    tgtTx = true;
    await c.tgt.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(timing.lockMs))}`);
    try {
      for (const r of rels) {
        await c.tgt.query(
          `ALTER TABLE ${r.parent} ATTACH PARTITION ${r.shard} FOR VALUES WITH (MODULUS ${modulus}, REMAINDER ${m.shard})`,
        );
        await c.tgt.query(`ALTER TABLE ${r.shard} DROP CONSTRAINT ${BOUND}`);
      }
    } catch (e) {
      throw new Retry(`could not attach the shard on group ${m.to}: ${(e as Error).message}`);
    }
    await c.tgt.query(`PREPARE TRANSACTION ${quoteLiteral(gid)}`);
    tgtTx = false;
    prepared.push(c.tgt);
    await c.src.query(`TRUNCATE ${shards.join(', ')}`);
    await c.src.query(`PREPARE TRANSACTION ${quoteLiteral(gid)}`);
    srcTx = false;
    prepared.push(c.src);
    await faultPoint('prepared', m.id);
    const placed = await env.catalogs.update((cat) => placeShard(cat, m.colocation, m.shard, m.from, m.to));
    if (isCatalogError(placed)) throw new MoveError(`the catalog refused the move: ${placed.message}`);
    onSwitched();
    const done = prepared;
    prepared = [];
    await faultPoint('switched', m.id);
    // Committed: the target first (statements released go there), then the source. A group
    // that cannot be reached now is finished by recovery, by the catalog (decideMove).
    for (const s of done)
      await s.query(`COMMIT PREPARED ${quoteLiteral(gid)}`).catch((e: unknown) =>
        env.progress({
          step: 'cutover',
          note: `COMMIT PREPARED left to recovery: ${(e as Error).message}`,
        }),
      );
    // Reads of the shard on the target's replicas wait until they have its arrival.
    const at = await c.tgt.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l').catch(() => null);
    if (at?.rows[0]) env.arrived?.(m.to, at.rows[0].l);
    return Date.now() - t0;
  } finally {
    if (srcTx) await c.src.query('ROLLBACK').catch(() => undefined);
    if (tgtTx) await c.tgt.query('ROLLBACK').catch(() => undefined);
    for (const s of prepared) await s.query(`ROLLBACK PREPARED ${quoteLiteral(gid)}`).catch(() => undefined);
    env.holds.release(hold);
  }
}
