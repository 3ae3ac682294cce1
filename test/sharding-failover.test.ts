/**
 * Failover of one group's primary under a routed write load: two groups, each a primary and one
 * standby in synchronous mode, HA on, `events` distributed by its key. Writers through the proxy
 * insert keys of group 0 and keys of group 1 (each writer one group's keys, one autocommitted
 * INSERT at a time); group 1's primary is killed (SIGKILL of its postmaster). Group 0's writers
 * never see an error and keep writing while group 1 fails over; group 1's writers may fail or wait
 * until its standby is promoted, then write again through the proxy; and every INSERT the client
 * saw acknowledged is on the new primaries afterwards (synchronous mode loses none). Then the same
 * load through a planned `pgscale switchover --group 1`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { binarySets, cli, until } from './harness.js';
import { shardGroups, upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { runningPid } from '../src/cluster/instance.js';

const bins = binarySets()[0]!;

interface HaStatus {
  groups: { group: number; leader: string | null; epoch: number }[];
}

/**
 * One client inserting rows for the keys of one group, one at a time, until stopped: row n has
 * the key keys[n % keys.length] and a sequence number no other writer uses (what `acked` lists).
 */
class Writer {
  readonly acked: number[] = [];
  readonly errors: { at: number; message: string }[] = [];
  private stopped = false;
  private done: Promise<void> | null = null;
  private c: pg.Client | null = null;

  constructor(
    private readonly sc: ShardedCluster,
    readonly group: number,
    private readonly keys: number[],
    private readonly firstSeq: number,
  ) {}

  start(): void {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    let i = 0;
    while (!this.stopped) {
      const k = this.keys[i % this.keys.length]!;
      const seq = this.firstSeq + i;
      try {
        if (!this.c) {
          const c = new pg.Client({ ...this.sc.app, connectionTimeoutMillis: 20_000, query_timeout: 60_000 });
          c.on('error', () => undefined);
          try {
            await c.connect();
          } catch (e) {
            await c.end().catch(() => undefined);
            throw e;
          }
          this.c = c;
        }
        await this.c.query('INSERT INTO events (id, seq, grp, at) VALUES ($1, $2, $3, clock_timestamp())', [
          k,
          seq,
          this.group,
        ]);
        this.acked.push(seq);
        i++;
      } catch (e) {
        // Not acknowledged: the row may or may not be stored; the next attempt has a new seq.
        i++;
        this.errors.push({ at: Date.now(), message: String((e as Error).message ?? e) });
        await this.c?.end().catch(() => undefined);
        this.c = null;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    await this.c?.end().catch(() => undefined);
  }
}

describe('sharding: failover of one group’s primary under a routed write load (synchronous)', () => {
  let sc: ShardedCluster;
  let writers: Writer[] = [];

  before(async () => {
    sc = await upSharded(bins, {
      groups: 2,
      replicas: 1,
      extra: (y) =>
        y
          .replace('unreachable_timeout: 3', 'unreachable_timeout: 2')
          .replace('synchronous: off', 'synchronous: on'),
    });
  });
  after(async () => {
    for (const w of writers) await w.stop().catch(() => undefined);
    await sc?.down();
  });

  const ha = async () =>
    (await (await fetch(`http://127.0.0.1:${sc.tc.cluster.config.http.port}/ha`)).json()) as HaStatus;
  const leaderOf = async (g: number) => (await ha()).groups.find((x) => x.group === g)!;

  /** What the proxy and the new primary say, for a failure message. */
  async function diagnose(): Promise<string> {
    const out: string[] = [];
    const admin = new pg.Client({
      ...sc.app,
      user: sc.tc.cluster.config.postgres.superuser,
      password: sc.superPassword,
      database: 'pgscale',
    });
    try {
      await admin.connect();
      for (const q of ['SHOW POOLS', 'SHOW SERVERS'])
        out.push(`${q}: ${JSON.stringify((await admin.query(q)).rows)}`);
    } catch (e) {
      out.push(`admin console: ${String(e)}`);
    } finally {
      await admin.end().catch(() => undefined);
    }
    for (const node of sc.tc.cluster.nodes()) {
      try {
        const d = await sc.connectGroup(node.group, node.port);
        const r = await d.query(
          "SELECT pid, usename, state, wait_event_type, wait_event, left(query, 60) AS q FROM pg_stat_activity WHERE datname = 'app' AND pid <> pg_backend_pid()",
        );
        const sync = await d.query(
          "SELECT current_setting('synchronous_standby_names') AS s, pg_is_in_recovery() AS rec",
        );
        out.push(`${node.name}: ${JSON.stringify(sync.rows[0])} activity ${JSON.stringify(r.rows)}`);
        await d.end();
      } catch (e) {
        out.push(`${node.name}: ${String(e)}`);
      }
    }
    try {
      const log = readFileSync(join(sc.tc.cluster.dataDir, 'logs', 'controller.log'), 'utf8');
      out.push(`controller.log (last 40 lines):\n${log.trim().split('\n').slice(-40).join('\n')}`);
    } catch (e) {
      out.push(String(e));
    }
    return out.join('\n');
  }

  let byGroup: number[][] | null = null;
  let runs = 0;

  /** The distributed table, and keys of each group (the proxy's shard for it, held by that group). */
  async function prepare(): Promise<number[][]> {
    if (byGroup) return byGroup;
    const app = await sc.connectApp();
    await app.query(
      'CREATE TABLE events (id bigint, seq bigint, grp int NOT NULL, at timestamptz, PRIMARY KEY (id, seq))',
    );
    await app.query("SELECT create_distributed_table('events', 'id')");
    // The group of each candidate key: the proxy's shard for it, held by that group.
    const groupOfShard = new Map<number, number>();
    for (const g of [0, 1]) {
      const d = await sc.connectGroup(g);
      try {
        for (const [shard] of await shardGroups([d], 'events')) groupOfShard.set(shard, g);
      } finally {
        await d.end();
      }
    }
    const keys: number[][] = [[], []];
    for (let k = 1; k <= 200; k++) {
      const r = await app.query<{ id: string }>(
        `SELECT get_shard_id_for_distribution_column('events', ${k}) AS id`,
      );
      keys[groupOfShard.get(Number(r.rows[0]!.id))!]!.push(k);
    }
    await app.end();
    assert.ok(keys[0]!.length > 20 && keys[1]!.length > 20);
    byGroup = keys;
    return keys;
  }

  /**
   * Writers on both groups for about 4 s, then `fault` on group 1's primary, then writes until
   * group 1 writes again on its new primary and 4 s have passed; checks what the test promises.
   */
  async function underLoad(what: string, fault: (old: string) => Promise<void>): Promise<void> {
    const keys = await prepare();
    const l0 = await until('group 0 has a leader', async () => (await leaderOf(0)).leader, 60_000);
    const l1 = await until('group 1 has a leader', async () => (await leaderOf(1)).leader, 60_000);
    const run = runs++;
    // Two writers per group, each on its own keys.
    writers = [0, 1].flatMap((g) =>
      [0, 1].map(
        (i) =>
          new Writer(
            sc,
            g,
            keys[g]!.filter((_, j) => j % 2 === i),
            (run * 4 + g * 2 + i) * 1_000_000_000,
          ),
      ),
    );
    for (const w of writers) w.start();
    const acked = (g: number) => writers.filter((w) => w.group === g).reduce((n, w) => n + w.acked.length, 0);
    const started = Date.now();
    // About 4 s of writes on both groups before the fault, 4 s or more after the promotion.
    await until(
      'writes on both groups',
      () => Promise.resolve(acked(0) > 100 && acked(1) > 100 && Date.now() - started > 4000),
      60_000,
    );

    const old = l1;
    const killedAt = Date.now();
    const marks0 = acked(0);
    await fault(old);
    const promoted = await until(
      'a new leader of group 1',
      async () => {
        const l = await leaderOf(1);
        return l.leader && l.leader !== old ? l.leader : null;
      },
      90_000,
    );
    const promotedAt = Date.now();
    const during0 = acked(0) - marks0;
    const mark1 = acked(1);
    await until(
      `group 1's writes through the proxy on the new primary ${promoted}`,
      () => Promise.resolve(acked(1) > mark1 + 100),
      60_000,
    ).catch(async (e: Error) => {
      const errs = writers
        .filter((w) => w.group === 1)
        .flatMap((w) => w.errors.slice(-3).map((x) => x.message));
      throw new Error(`${e.message}; group 1's last errors: ${JSON.stringify(errs)}\n${await diagnose()}`);
    });
    const mark0 = acked(0);
    await until(
      'group 0 still writing',
      () => Promise.resolve(acked(0) > mark0 + 50 && Date.now() - promotedAt > 4000),
      60_000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${await diagnose()}`);
    });
    for (const w of writers) await w.stop();

    const errors = (g: number) => writers.filter((w) => w.group === g).flatMap((w) => w.errors);
    console.log(
      `# ${what}: group 0: ${acked(0)} acknowledged, ${during0} of them during the change (${promotedAt - killedAt} ms), ` +
        `errors ${errors(0).length}; group 1: ${acked(1)} acknowledged, errors ${errors(1).length}` +
        (errors(1).length
          ? ` (${[...new Set(errors(1).map((e) => e.message))].slice(0, 4).join(' | ')})`
          : ''),
    );
    assert.deepEqual(errors(0), [], "group 0's writers saw no error");
    assert.ok(during0 > 0, 'group 0 kept writing while group 1 failed over');
    assert.equal(l0, (await leaderOf(0)).leader, "group 0's primary did not change");

    // Every acknowledged key is on its group's (new) primary.
    const port = (name: string) => sc.tc.cluster.nodes().find((n) => n.name === name)!.port;
    for (const [g, leader] of [
      [0, l0],
      [1, promoted],
    ] as const) {
      const d = await sc.connectGroup(g, port(leader));
      try {
        const r = await d.query<{ seq: string }>('SELECT seq::text FROM events');
        const stored = new Set(r.rows.map((x) => Number(x.seq)));
        const want = writers.filter((w) => w.group === g).flatMap((w) => w.acked);
        const lost = want.filter((k) => !stored.has(k));
        assert.deepEqual(lost.slice(0, 20), [], `group ${g}: ${lost.length} acknowledged writes lost`);
      } finally {
        await d.end();
      }
    }
  }

  test('kill -9 of group 1’s primary: only its keys pause; no acknowledged write is lost', async () => {
    await underLoad('kill -9', (old) => {
      const pid = runningPid(sc.tc.cluster.paths(old).pgdata);
      assert.ok(pid, `${old} runs`);
      process.kill(pid, 'SIGKILL');
      return Promise.resolve();
    });
  });

  test('pgscale switchover of group 1 under the same load: only its keys pause, nothing lost', async () => {
    await underLoad('switchover', async () => {
      await until(
        'a switchover of group 1',
        async () => (await cli(['switchover', '-c', sc.tc.file, '--group', '1'], sc.tc.env)).code === 0,
        90_000,
      );
    });
  });
});
