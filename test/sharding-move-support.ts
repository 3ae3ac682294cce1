/**
 * Shared parts of the shard-move tests (issue #17): a write load through the proxy that records
 * every acknowledged write — inserts in transactions over two colocated tables and updates of
 * acknowledged rows — and the checks afterwards: no acknowledged write lost or duplicated, every
 * row on the group the catalog says, nothing of the moves left behind (subscriptions,
 * publications, slots, prepared transactions, partitions on the wrong group).
 */
import assert from 'node:assert/strict';
import type pg from 'pg';
import postgres from 'postgres';
import type { ShardedCluster } from './sharding-support.js';

export interface WriteLoad {
  /** Stops the writers and resolves when they have. */
  stop(): Promise<void>;
  /** Acknowledged rows: id → its value of v (acknowledged updates counted). */
  readonly acked: Map<number, number>;
  readonly errors: string[];
  /** Statements acknowledged so far (progress). */
  done(): number;
}

/**
 * `workers` node-postgres writers (extended protocol), one postgres.js writer and one reader across
 * groups (the general path) through the proxy;
 * new ids from `base` + (writer + 1) · 10^6 on.
 */
export async function startWriteLoad(sc: ShardedCluster, workers = 3, base = 0): Promise<WriteLoad> {
  const acked = new Map<number, number>();
  const errors: string[] = [];
  let stopping = false;
  let count = 0;
  const clients: pg.Client[] = [];
  for (let i = 0; i < workers; i++) clients.push(await sc.connectApp());
  const sql = postgres({ ...sc.app, username: sc.app.user, max: 1, onnotice: () => undefined });
  const pick = (): number | null => {
    if (acked.size === 0) return null;
    const keys = [...acked.keys()];
    return keys[Math.floor(Math.random() * keys.length)]!;
  };
  const inflight = new Set<number>();
  const loop = async (w: number, step: (id: number, update: number | null) => Promise<void>) => {
    for (let seq = 1; !stopping; seq++) {
      const id = base + (w + 1) * 1_000_000 + seq;
      const target = seq % 3 === 0 ? pick() : null;
      if (target !== null && inflight.has(target)) continue;
      if (target !== null) inflight.add(target);
      try {
        await step(id, target);
        if (target === null) acked.set(id, 0);
        else acked.set(target, acked.get(target)! + 1);
        count++;
      } catch (e) {
        errors.push(`worker ${w}: ${(e as Error).message}`);
        if (errors.length > 50) stopping = true;
      } finally {
        if (target !== null) inflight.delete(target);
      }
    }
  };
  const runs = clients.map((c, w) =>
    loop(w, async (id, update) => {
      if (update !== null) {
        const r = await c.query('UPDATE users SET v = v + 1 WHERE user_id = $1', [update]);
        assert.equal(r.rowCount, 1, `update of ${update} found ${r.rowCount} rows`);
        return;
      }
      await c.query('BEGIN');
      try {
        await c.query('INSERT INTO users (user_id, v) VALUES ($1, 0)', [id]);
        await c.query('INSERT INTO events (user_id, n) VALUES ($1, 1)', [id]);
        await c.query('COMMIT');
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
    }),
  );
  runs.push(
    loop(workers, async (id, update) => {
      if (update !== null) {
        const r = await sql`UPDATE users SET v = v + 1 WHERE user_id = ${update}`;
        assert.equal(r.count, 1, `update of ${update} found ${r.count} rows`);
        return;
      }
      await sql.begin(async (tx) => {
        await tx`INSERT INTO users (user_id, v) VALUES (${id}, 0)`;
        await tx`INSERT INTO events (user_id, n) VALUES (${id}, 1)`;
      });
    }),
  );
  // A read across groups on the general path (a window: not the fast path), outside transactions.
  const reader = await sc.connectApp();
  clients.push(reader);
  runs.push(
    (async () => {
      while (!stopping) {
        try {
          await reader.query('SELECT max(rn) FROM (SELECT row_number() OVER () AS rn FROM users) t');
          count++;
        } catch (e) {
          errors.push(`reader: ${(e as Error).message}`);
          if (errors.length > 50) stopping = true;
        }
      }
    })(),
  );
  return {
    acked,
    errors,
    done: () => count,
    async stop() {
      stopping = true;
      await Promise.all(runs);
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await sql.end({ timeout: 5 }).catch(() => undefined);
    },
  };
}

/** Waits until `load` has done `n` statements — or stopped on errors (the test then reports them). */
export async function progressed(load: WriteLoad, n: number): Promise<void> {
  while (load.done() < n && load.errors.length === 0) await new Promise((r) => setTimeout(r, 50));
}

/** Makes users (primary key) and events (no key: REPLICA IDENTITY FULL while moving), colocated. */
export async function makeTables(sc: ShardedCluster, shardCount: number, rows: number): Promise<void> {
  const c = await sc.connectApp();
  try {
    await c.query('CREATE TABLE users (user_id bigint PRIMARY KEY, v int NOT NULL, note text)');
    await c.query('CREATE TABLE events (user_id bigint NOT NULL, n int, at timestamptz DEFAULT now())');
    await c.query('CREATE INDEX ON events (user_id)');
    await c.query(`SELECT create_distributed_table('users', 'user_id', shard_count => ${shardCount})`);
    await c.query(`SELECT create_distributed_table('events', 'user_id', colocate_with => 'users')`);
    await c.query('CREATE TABLE countries (code text PRIMARY KEY, name text)');
    await c.query("INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany')");
    await c.query(`SELECT create_reference_table('countries')`);
    for (let i = 0; i < rows; i += 500) {
      const values = Array.from(
        { length: Math.min(500, rows - i) },
        (_, k) => `(${i + k + 1}, 0, repeat('x', 100))`,
      );
      await c.query(`INSERT INTO users (user_id, v, note) VALUES ${values.join(',')}`);
    }
  } finally {
    await c.end();
  }
}

/** The checks after moves: every acknowledged write once, on its catalog group; nothing left over. */
export async function checkAfterMoves(
  sc: ShardedCluster,
  load: WriteLoad,
  groups: number,
  /** Each group's primary's port (default: its first node's). */
  ports?: readonly number[],
): Promise<void> {
  const direct: pg.Client[] = [];
  for (let g = 0; g < groups; g++) direct.push(await sc.connectGroup(g, ports?.[g]));
  try {
    const app = await sc.connectApp();
    const where = new Map<number, number>();
    try {
      const r = await app.query<{ shardid: string; nodeport: number }>(
        "SELECT shardid::text, nodeport FROM citus_shards WHERE table_name = 'users'::regclass",
      );
      for (const row of r.rows) where.set(Number(row.shardid), row.nodeport);
    } finally {
      await app.end();
    }
    const ports = await Promise.all(
      direct.map(async (c) => Number((await c.query('SHOW port')).rows[0].port)),
    );
    const seen = new Map<number, number>();
    for (let g = 0; g < groups; g++) {
      const rows = await direct[g]!.query<{ id: string; v: number; part: string }>(
        'SELECT user_id::text AS id, v, tableoid::regclass::text AS part FROM users',
      );
      for (const row of rows.rows) {
        const id = Number(row.id);
        assert.ok(!seen.has(id), `user ${id} is on two groups`);
        seen.set(id, row.v);
        const shard = Number(/_(\d+)$/.exec(row.part)![1]);
        assert.equal(
          where.get(shard),
          ports[g],
          `shard ${shard} is on the group on port ${ports[g]}, the catalog says ${where.get(shard)}`,
        );
      }
      const events = await direct[g]!.query<{ n: string }>(
        'SELECT count(*)::text AS n FROM events e WHERE NOT EXISTS (SELECT FROM users u WHERE u.user_id = e.user_id)',
      );
      assert.equal(events.rows[0]!.n, '0', `group ${g}: events whose user is not on the same group`);
      assert.equal((await direct[g]!.query('SELECT count(*)::int AS n FROM countries')).rows[0].n, 2);
      for (const [what, q] of [
        ['subscriptions', 'SELECT subname AS x FROM pg_subscription'],
        ['publications', "SELECT pubname AS x FROM pg_publication WHERE pubname LIKE 'pgscale_move%'"],
        ['slots', "SELECT slot_name AS x FROM pg_replication_slots WHERE slot_type = 'logical'"],
        ['prepared transactions', 'SELECT gid AS x FROM pg_prepared_xacts'],
        [
          'partitions pending detach',
          'SELECT inhrelid::regclass::text AS x FROM pg_inherits WHERE inhdetachpending',
        ],
        [
          'stray shard tables',
          "SELECT relname AS x FROM pg_class WHERE relname ~ '^(users|events)_[0-9]+$' AND relkind = 'r' AND NOT relispartition",
        ],
      ] as const) {
        const left = await direct[g]!.query<{ x: string }>(q);
        assert.deepEqual(
          left.rows.map((r) => r.x),
          [],
          `group ${g}: ${what} left behind`,
        );
      }
    }
    let lost = 0;
    for (const [id, v] of load.acked) {
      if (!seen.has(id)) lost++;
      else assert.equal(seen.get(id), v, `user ${id}: v is ${seen.get(id)}, ${v} acknowledged updates`);
    }
    assert.equal(lost, 0, `${lost} acknowledged inserts lost`);
  } finally {
    await Promise.all(direct.map((c) => c.end().catch(() => undefined)));
  }
}
