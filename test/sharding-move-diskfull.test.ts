/**
 * A shard move into a group whose disk is full (issue #17), with real processes: two groups (a
 * primary each, no standby: a standby on this host would replay the tablespace into the same
 * directory), a write load through the proxy that records every acknowledged write.
 *
 * The target's disk is really full: a small tmpfs is mounted (the tests run as root), a
 * tablespace made there on the target's primary and made the database's default_tablespace, so
 * the move's tables land on it; the shard holds more than fits. The move fails and names the
 * cause; the shard stays readable and writable on its source, the catalog unchanged, no
 * acknowledged write lost, nothing of the move left on either group (subscription, slot,
 * publication, tables), the disk's space free again. Once the disk is grown (remounted larger),
 * the same move works.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, statfsSync } from 'node:fs';
import { binarySets, cli, tempDir } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { checkAfterMoves, makeTables, progressed, startWriteLoad } from './sharding-move-support.js';
import type pg from 'pg';
import { serviceUser } from '../src/cluster/run-as.js';

const bins = binarySets()[0]!;
/** users rows of ~150 bytes: each of the 2 shards ~3.5 MB with its key, more than MOUNT_MB. */
const ROWS = 40_000;
const MOUNT_MB = 2;
const SPACE = 'pgscale_test_full';

/** Mounts a tmpfs of `mb` MB owned by the PostgreSQL run user, or why the test is skipped (mount not permitted). */
function mountSmall(mb: number): { dir: string; unmount(): void } | { skip: string } {
  const dir = tempDir('pgscale-diskfull-');
  const u = serviceUser();
  const owner = u ? `,uid=${u.uid},gid=${u.gid}` : '';
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m,mode=0700${owner}`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return {
      skip: `mounting a tmpfs is not permitted here (${(r.stderr || r.error?.message || '').trim()})`,
    };
  }
  return {
    dir,
    unmount() {
      spawnSync('umount', [dir]);
      if (spawnSync('mountpoint', ['-q', dir]).status === 0) spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('a shard move into a full disk', () => {
  let sc: ShardedCluster | undefined;
  let mount: { dir: string; unmount(): void } | undefined;
  let skip: string | undefined;

  before(async () => {
    const m = mountSmall(MOUNT_MB);
    if ('skip' in m) {
      skip = m.skip;
      return;
    }
    mount = m;
    sc = await upSharded(bins, { groups: 2, replicas: 0 });
    await makeTables(sc, 2, ROWS);
  });

  after(async () => {
    // PostgreSQL stops first: it holds files in the tablespace.
    await sc?.down();
    mount?.unmount();
  });

  const run = (args: string[]) => cli([...args, '-c', sc!.tc.file], sc!.tc.env);

  /** The id of the shard of users on group 0 (citus_shards). */
  async function shardOnGroup0(): Promise<string> {
    const app = await sc!.connectApp();
    try {
      const r = await app.query<{ id: string }>(
        `SELECT shardid::text AS id FROM citus_shards WHERE table_name = 'users'::regclass AND nodeport = ${sc!.portOf(0)}`,
      );
      assert.equal(r.rows.length, 1, 'one shard of users on group 0');
      return r.rows[0]!.id;
    } finally {
      await app.end();
    }
  }

  async function onTarget(sql: string): Promise<void> {
    const c = await sc!.connectGroup(1);
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  }

  test('the move fails naming the full disk, leaves the shard on its source, then succeeds with space', async (t) => {
    if (skip) return t.skip(skip);
    const shard = await shardOnGroup0();
    await onTarget(`CREATE TABLESPACE ${SPACE} LOCATION '${mount!.dir}'`);
    await onTarget(`ALTER DATABASE app SET default_tablespace = ${SPACE}`);

    const load = await startWriteLoad(sc!, 2);
    let moved;
    try {
      await progressed(load, 30);
      const t0 = Date.now();
      moved = await run(['move-shard', shard, '--to', '1']);
      t.diagnostic(`the move failed after ${Date.now() - t0} ms:\n${moved.stdout}`);
      await progressed(load, load.done() + 20);
    } finally {
      await load.stop();
    }
    assert.notEqual(moved.code, 0, `the move into a full disk succeeded:\n${moved.stdout}`);
    // The cause, measured on the target (not a guess): PostgreSQL's own error of a write there.
    assert.match(
      moved.stdout + moved.stderr,
      /failed: the subscription on group 1 failed \d+ times; a write there fails: could not extend file .*No space left on device/,
    );
    assert.deepEqual(load.errors, [], 'no client error');
    const status = await run(['rebalance', '--status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^1 +move +failed .*No space left on device/m);

    // On its source still, readable and writable there, nothing of the move left anywhere.
    const app = await sc!.connectApp();
    try {
      const where = await app.query<{ port: number }>(
        `SELECT nodeport AS port FROM citus_shards WHERE shardid = ${shard}`,
      );
      assert.equal(where.rows[0]!.port, sc!.portOf(0));
      const id = await keyInShard(app, shard);
      await app.query('INSERT INTO users (user_id, v) VALUES ($1, 0)', [id]);
      await app.query('UPDATE users SET v = v + 1 WHERE user_id = $1', [id]);
      const back = await app.query('SELECT v FROM users WHERE user_id = $1', [id]);
      assert.equal(back.rows[0].v, 1);
      await app.query('DELETE FROM users WHERE user_id = $1', [id]);
    } finally {
      await app.end();
    }
    await checkAfterMoves(sc!, load, 2);
    // The move's tables on the full disk were dropped: its space is free again; no table of the
    // move (fence, probe) on either group.
    const target = await sc!.connectGroup(1);
    try {
      const inSpace = await target.query<{ x: string }>(
        `SELECT relname AS x FROM pg_class WHERE reltablespace = (SELECT oid FROM pg_tablespace WHERE spcname = '${SPACE}')`,
      );
      assert.deepEqual(
        inSpace.rows.map((r) => r.x),
        [],
        'tables left on the full disk',
      );
    } finally {
      await target.end();
    }
    const fs = statfsSync(mount!.dir);
    assert.ok(fs.bfree > fs.blocks * 0.9, `${fs.bfree} of ${fs.blocks} blocks free after the failed move`);
    for (const g of [0, 1]) {
      const c = await sc!.connectGroup(g);
      try {
        const left = await c.query<{ x: string }>(
          "SELECT c.relname AS x FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgscale_move'",
        );
        assert.deepEqual(
          left.rows.map((r) => r.x),
          [],
          `group ${g}: tables of the move left`,
        );
      } finally {
        await c.end();
      }
    }

    // Space back (the disk grown): the same move works, its tables on that disk, under the load.
    const grow = spawnSync('mount', ['-o', `remount,size=${8 * MOUNT_MB}m`, mount!.dir], {
      encoding: 'utf8',
    });
    assert.equal(grow.status, 0, grow.stderr);
    const again = await startWriteLoad(sc!, 2, 10_000_000);
    let ok;
    try {
      await progressed(again, 30);
      ok = await run(['move-shard', shard, '--to', '1']);
      await progressed(again, again.done() + 20);
    } finally {
      await again.stop();
    }
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.deepEqual(again.errors, []);
    await checkAfterMoves(sc!, again, 2);
    await checkAfterMoves(sc!, load, 2);
    const app2 = await sc!.connectApp();
    try {
      const where = await app2.query<{ port: number }>(
        `SELECT nodeport AS port FROM citus_shards WHERE shardid = ${shard}`,
      );
      assert.equal(where.rows[0]!.port, sc!.portOf(1));
    } finally {
      await app2.end();
    }
    // The shard's tables are on the grown disk: PostgreSQL stops before it is unmounted (after()).
    const c = await sc!.connectGroup(1);
    try {
      const r = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_class WHERE reltablespace = (SELECT oid FROM pg_tablespace WHERE spcname = '${SPACE}') AND relname ~ '^(users|events)_'`,
      );
      assert.ok(r.rows[0]!.n >= 2, 'the moved shard is on the grown disk');
    } finally {
      await c.end();
    }
  });
});

/** A new user id that falls in shard `shard`. */
async function keyInShard(app: pg.Client, shard: string): Promise<number> {
  for (let id = 50_000_000; ; id++) {
    const r = await app.query<{ s: string }>(
      `SELECT get_shard_id_for_distribution_column('users', ${id}) AS s`,
    );
    if (String(r.rows[0]!.s) === shard) return id;
  }
}
