/**
 * Scenario 6, a query across groups: one aggregate (count, sum and average over a whole table)
 * on a plain table that one group holds, then on the same rows in a table distributed over every
 * group of the sharding cluster (4 after scenario 5, else at least 2). Through the proxy the
 * distributed one takes its fast path: each group aggregates its own shards, and group 0 merges
 * the partial results — so every group's CPU works on the query. Figures: the median time of the
 * query on each, the ratio, and whether both gave the same answer.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { int, ms, ratio } from '../format.js';
import type { DemoCluster } from '../cluster.js';
import type { Progress } from '../progress.js';
import type { Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { appQuery, distribute, ensureGroups } from '../sharded.js';

const SQL = (t: string) => `SELECT count(*) AS n, sum(v) AS total, round(avg(v), 3) AS mean FROM ${t}`;

export interface QueryTarget {
  label: string;
  groups: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  answer: string;
}

async function timeQuery(
  endpoint: pg.ClientConfig,
  sql: string,
  times: number,
): Promise<{ ms: number[]; answer: string }> {
  const c = new pg.Client(endpoint);
  c.on('error', () => undefined);
  await c.connect();
  try {
    const first = await c.query(sql); // warms caches and plans
    const out: number[] = [];
    for (let i = 0; i < times; i++) {
      const t = performance.now();
      await c.query(sql);
      out.push(performance.now() - t);
    }
    return { ms: out.sort((a, b) => a - b), answer: JSON.stringify(first.rows[0]) };
  } finally {
    await c.end();
  }
}

/** The plain table on group 0 and the distributed one, each with `rows` rows (created in parallel). */
async function fillTables(
  cluster: DemoCluster,
  rows: number,
  groups: number,
  progress: Progress,
): Promise<void> {
  const local = async () => {
    await appQuery(cluster, 'DROP TABLE IF EXISTS demo_q_local');
    await appQuery(
      cluster,
      'CREATE TABLE demo_q_local (id bigint PRIMARY KEY, client int NOT NULL, v int NOT NULL DEFAULT 0, at timestamptz NOT NULL DEFAULT now())',
    );
    await appQuery(
      cluster,
      'INSERT INTO demo_q_local (id, client, v) SELECT g, g % 64, g % 1000 FROM generate_series(1, $1::int) g',
      [rows],
    );
    await appQuery(cluster, 'VACUUM ANALYZE demo_q_local');
  };
  progress.update(0.1, `filling a plain table and distributing ${int(rows)} rows over ${groups} groups`);
  await Promise.all([local(), distribute(cluster, 'demo_q', rows)]);
}

export const crossGroupQuery: Scenario = {
  id: 'cross-group-query',
  title: 'A query across groups (sharding)',
  unavailable: () => null,
  async run(ctx: ScenarioContext): Promise<ScenarioOutcome> {
    const { settings, progress } = ctx;
    const cluster = await ctx.sharded();
    await ensureGroups(cluster, 2);
    const groups = cluster.groupCount();
    const rows = settings.quick ? 100_000 : 500_000;
    const times = settings.quick ? 3 : 7;
    await ctx.phase('fill tables', () => fillTables(cluster, rows, groups, progress));
    const targets: QueryTarget[] = [];
    for (const [label, table, g] of [
      ['one group (a plain table on group 0)', 'demo_q_local', 1],
      [`${groups} groups (a distributed table)`, 'demo_q', groups],
    ] as const) {
      progress.update(0.5 + targets.length * 0.25, `${label}: ${times} runs of the query`);
      const r = await ctx.phase(g === 1 ? 'one group' : `${g} groups`, () =>
        timeQuery(cluster.endpoint(), SQL(table), times),
      );
      const t: QueryTarget = {
        label,
        groups: g,
        medianMs: r.ms[r.ms.length >> 1]!,
        minMs: r.ms[0]!,
        maxMs: r.ms[r.ms.length - 1]!,
        answer: r.answer,
      };
      targets.push(t);
      progress.note(`${label}: median ${ms(t.medianMs)} ms (${ms(t.minMs)}–${ms(t.maxMs)}), ${t.answer}`);
    }
    const [one, all] = targets as [QueryTarget, QueryTarget];
    const same = one.answer === all.answer;
    if (!same) throw new Error(`the two tables gave different answers: ${one.answer} vs ${all.answer}`);
    const speed = one.medianMs / Math.max(all.medianMs, 1e-9);
    return {
      conclusion:
        `The same aggregate over ${int(rows)} rows took ${ms(all.medianMs)} ms over ${groups} groups vs ${ms(one.medianMs)} ms on one ` +
        `(${ratio(speed)} as fast; median of ${times}), with the same answer: each group aggregated its own shards and group 0 merged the results.`,
      headline: `aggregate over ${int(rows)} rows: ${ms(all.medianMs)} ms on ${groups} groups vs ${ms(one.medianMs)} ms on one (${ratio(speed)})`,
      figures: { rows, runs: times, sql: SQL('<table>'), targets, speedup: speed, sameAnswer: same },
      keyFigures: [
        ...targets.map((t) => ({ name: `median, ${t.groups} group(s)`, unit: 'ms', value: t.medianMs })),
        { name: 'speed-up', unit: '×', value: speed },
      ],
      table: {
        headers: ['table', 'groups', 'median ms', 'fastest ms', 'slowest ms', 'answer'],
        rows: targets.map((t) => [t.label, t.groups, ms(t.medianMs), ms(t.minMs), ms(t.maxMs), t.answer]),
      },
      charts: [
        {
          type: 'bars',
          title: `Time of one aggregate over ${int(rows)} rows (median of ${times})`,
          unit: 'query time, ms',
          xLabel: 'where the rows are',
          bars: targets.map((t) => ({
            label: t.label,
            value: t.medianMs,
            note: `${ms(t.medianMs)} ms`,
          })),
        },
      ],
    };
  },
};
