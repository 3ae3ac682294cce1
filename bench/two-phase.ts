/**
 * `npm run bench:two-phase`: the latency of a transaction that writes on two groups (two-phase
 * commit through the proxy: PREPARE on both, the decision in the state store, COMMIT PREPARED on
 * both) against the same transaction on one group (a plain COMMIT), on the same cluster in the
 * same run: 2 groups, one primary each, synchronous_commit on (PREPARE and COMMIT PREPARED flush
 * their WAL whatever it says, so the one-group commit flushes too). pgbench runs each script with
 * one client (latency) and with 8 (throughput), alternating, `--rounds` times; the report is the
 * ratio of the medians. Target (issue #16): two groups ≤ 2.5× one group's latency.
 *
 *   npm run bench:two-phase -- [--quick] [--seconds N] [--rounds N] [--out file.json]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { runMain } from './cleanup.js';
import { runPgbench } from './pgbench.js';
import type { PgbenchResult } from './pgbench.js';
import { startWritesCluster } from './writes-cluster.js';
import { int } from './options.js';

interface Options {
  seconds: number;
  rounds: number;
  out: string | null;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return null;
  const quick = values.quick === true;
  return {
    seconds: int(values.seconds, quick ? 4 : 10, 'seconds'),
    rounds: int(values.rounds, quick ? 1 : 3, 'rounds'),
    out: values.out ?? null,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
};

async function main(o: Options): Promise<number> {
  const c = await startWritesCluster({
    groups: 2,
    poolSize: 20,
    maxConnections: 100,
    sharedBuffers: '128MB',
    name: 'benchtwophase',
    synchronousCommit: 'on',
  });
  try {
    const app = new pg.Client(c.app);
    await app.connect();
    await app.query('CREATE TABLE kv (k bigint PRIMARY KEY, v bigint NOT NULL DEFAULT 0)');
    await app.query('INSERT INTO kv (k) SELECT generate_series(1, 2000)');
    await app.query("SELECT create_distributed_table('kv', 'k')");
    await app.end();
    // Keys on each group (where PostgreSQL stored them).
    const keys: number[][] = [];
    for (const p of c.primaries) {
      const s = await c.superClient(p);
      keys.push(
        (await s.query<{ k: string }>('SELECT k FROM kv ORDER BY k LIMIT 50')).rows.map((r) => Number(r.k)),
      );
      await s.end();
    }
    // pgbench has no arrays: a key of group g by CASE over 50 of them.
    const pick = (g: number, v: string) =>
      `\\set i${v} random(0, 49)\n\\set ${v} case ${keys[g]!.slice(0, 50)
        .map((k, i) => `when :i${v} = ${i} then ${k}`)
        .join(' ')} else 0 end`;
    const script = (second: number) => ({
      name: second === 0 ? 'one-group' : 'two-groups',
      text: [
        pick(0, 'x'),
        pick(second, 'y'),
        // Locks in key order on one group (no deadlock between clients).
        second === 0 ? '\\set a least(:x, :y)\n\\set b greatest(:x, :y)' : '\\set a :x\n\\set b :y',
        'BEGIN;',
        'UPDATE kv SET v = v + 1 WHERE k = :a;',
        'UPDATE kv SET v = v + 1 WHERE k = :b;',
        'END;',
        '',
      ].join('\n'),
    });
    const runs: { script: string; clients: number; round: number; r: PgbenchResult }[] = [];
    for (let round = 0; round < o.rounds; round++) {
      for (const clients of [1, 8]) {
        for (const second of round % 2 === 0 ? [0, 1] : [1, 0]) {
          const s = script(second);
          const r = await runPgbench({
            ...c.app,
            pgbench: c.pgbench,
            workload: 'script',
            script: s,
            mode: 'extended',
            clients,
            durationS: o.seconds,
          });
          runs.push({ script: s.name, clients, round, r });
          console.log(
            `round ${round + 1} ${s.name} ${clients} client(s): ${r.tps?.toFixed(0) ?? '?'} TPS, p50 ${r.p50Ms?.toFixed(2) ?? '?'} ms, p99 ${r.p99Ms?.toFixed(2) ?? '?'} ms, failed ${r.failed}, aborted ${r.aborted}`,
          );
        }
      }
    }
    const floor = await protocolFloor(c, keys, o.seconds);
    const med = (name: string, clients: number, f: (r: PgbenchResult) => number | null) =>
      median(runs.filter((x) => x.script === name && x.clients === clients).map((x) => f(x.r) ?? NaN));
    const summary = {
      latency_p50_ms: { one: med('one-group', 1, (r) => r.p50Ms), two: med('two-groups', 1, (r) => r.p50Ms) },
      tps_1: { one: med('one-group', 1, (r) => r.tps), two: med('two-groups', 1, (r) => r.tps) },
      tps_8: { one: med('one-group', 8, (r) => r.tps), two: med('two-groups', 8, (r) => r.tps) },
    };
    const ratio = summary.latency_p50_ms.two / summary.latency_p50_ms.one;
    console.log(
      `\nfloor without the proxy (node-postgres straight to the primaries, 1 client, p50): one group ${floor.one.toFixed(2)} ms, hand-made two-phase commit ${floor.two.toFixed(2)} ms: ${(floor.two / floor.one).toFixed(2)}×`,
    );
    const errors = runs.reduce((n, x) => n + x.r.failed + x.r.aborted + x.r.errorLines, 0);
    console.log(
      `\nlatency (1 client, p50): one group ${summary.latency_p50_ms.one.toFixed(2)} ms, two groups ${summary.latency_p50_ms.two.toFixed(2)} ms: ${ratio.toFixed(2)}× (target ≤ 2.5×: ${ratio <= 2.5 ? 'met' : 'not met'})`,
    );
    console.log(
      `throughput (8 clients): one group ${summary.tps_8.one.toFixed(0)} TPS, two groups ${summary.tps_8.two.toFixed(0)} TPS; errors ${errors}`,
    );
    const out = o.out ?? `bench/results/two-phase-${new Date().toISOString().slice(0, 10)}.json`;
    writeFileSync(out, JSON.stringify({ options: o, summary, ratio, floor, errors, runs }, null, 2) + '\n');
    console.log(`written ${out}`);
    return errors === 0 ? 0 : 1;
  } finally {
    await c.stop();
  }
}

/**
 * The same two transactions without the proxy, by hand with node-postgres on the primaries: one
 * group (BEGIN, two UPDATEs, COMMIT) and two groups with the least two-phase commit that keeps a
 * decision (PREPARE on both in parallel, the decision row on group 0, COMMIT PREPARED on both in
 * parallel). Its ratio is what the protocol costs on this disk, whatever the proxy does.
 */
async function protocolFloor(
  c: Awaited<ReturnType<typeof startWritesCluster>>,
  keys: number[][],
  seconds: number,
): Promise<{ one: number; two: number }> {
  const g0 = await c.superClient(c.primaries[0]!);
  const g1 = await c.superClient(c.primaries[1]!);
  const rec = await c.superClient(c.primaries[0]!);
  await rec.query('CREATE TABLE IF NOT EXISTS bench_decisions (id text PRIMARY KEY)');
  const time = async (f: (i: number) => Promise<void>) => {
    const out: number[] = [];
    const end = Date.now() + seconds * 1000;
    for (let i = 0; Date.now() < end; i++) {
      const t = performance.now();
      await f(i);
      out.push(performance.now() - t);
    }
    return median(out);
  };
  const k = (g: number, i: number) => keys[g]![i % keys[g]!.length]!;
  try {
    const one = await time(async (i) => {
      await g0.query('BEGIN');
      await g0.query('UPDATE kv SET v = v + 1 WHERE k = $1', [k(0, i)]);
      await g0.query('UPDATE kv SET v = v + 1 WHERE k = $1', [k(0, i + 1)]);
      await g0.query('COMMIT');
    });
    const two = await time(async (i) => {
      const id = `bench-${process.pid}-${i}`;
      await g0.query('BEGIN');
      await g0.query('UPDATE kv SET v = v + 1 WHERE k = $1', [k(0, i)]);
      await g1.query('BEGIN');
      await g1.query('UPDATE kv SET v = v + 1 WHERE k = $1', [k(1, i)]);
      await Promise.all([
        g0.query(`PREPARE TRANSACTION '${id}:0'`),
        g1.query(`PREPARE TRANSACTION '${id}:1'`),
      ]);
      await rec.query('INSERT INTO bench_decisions VALUES ($1)', [id]);
      await Promise.all([g0.query(`COMMIT PREPARED '${id}:0'`), g1.query(`COMMIT PREPARED '${id}:1'`)]);
    });
    return { one, two };
  } finally {
    for (const x of [g0, g1, rec]) await x.end().catch(() => undefined);
  }
}

void runMain(
  parseOptions,
  'npm run bench:two-phase -- [--quick] [--seconds N] [--rounds N] [--out file.json]',
  main,
);
