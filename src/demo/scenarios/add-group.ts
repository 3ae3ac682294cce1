/**
 * Scenario 7, adding a group under load: writers insert rows by key into a distributed table
 * through the proxy while `pgscale add-group` adds a group of one primary and `pgscale rebalance`
 * moves shards onto it. Figures: the timeline of writes and errors (100 ms buckets) with the
 * add-group and each shard's move marked, each moved shard's write pause (from the rebalance
 * job, and the slowest write to that shard as the clients saw it), and — checked by id on every
 * group afterwards — acknowledged writes lost (0 expected) and rows found twice.
 */
import { pgscaleCli } from '../cluster.js';
import { int, seconds as secs } from '../format.js';
import type { Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { appQuery, distribute, ensureGroups, idsOnGroups, shardOf } from '../sharded.js';
import { timelineChart, underLoad } from './under-load.js';
import type { Marker } from './under-load.js';

const WRITERS = 16;
const TABLE = 'demo_moving';

interface MoveFigure {
  shardId: number;
  shard: number;
  from: string;
  to: string;
  pauseMs: number | null;
  /** The slowest acknowledged write to that shard during the run, as a client saw it. */
  slowestWriteMs: number | null;
}

interface Job {
  state: string;
  moves: {
    shard: number;
    shard_id: number;
    from: string;
    to: string;
    state: string;
    finished_at?: string;
    pause_ms?: number;
  }[];
}

export const addGroup: Scenario = {
  id: 'add-group',
  title: 'Adding a group under load (sharding)',
  unavailable: () => null,
  async run(ctx: ScenarioContext): Promise<ScenarioOutcome> {
    const cluster = await ctx.sharded();
    await ensureGroups(cluster, 1);
    // Only this scenario's table may move: the other scenarios' would be rebalanced too.
    for (const t of ['demo_w1', 'demo_w2', 'demo_w4', 'demo_q', 'demo_q_local'])
      await appQuery(cluster, `DROP TABLE IF EXISTS ${t}`);
    const before = cluster.groupCount();
    // Enough shards that the rebalance moves at least two onto the new group (8 over 4 groups
    // would move one: 2 each, then 2, 2, 2, 1, 1).
    const shards = before >= 4 ? 10 : 8;
    await distribute(cluster, TABLE, 0, shards);
    let addSeconds = 0;
    let job: Job | null = null;
    let duplicates = 0;
    const run = await underLoad(ctx, {
      label: `add-group and rebalance under ${WRITERS} writers`,
      before: ctx.settings.quick ? 2 : 4,
      after: ctx.settings.quick ? 2 : 4,
      expectSeconds: ctx.settings.quick ? 20 : 30,
      progressBase: 0,
      progressSpan: 1,
      workload: {
        cluster,
        writeSql: `INSERT INTO ${TABLE} (id, client) VALUES ($1, $2)`,
        writers: WRITERS,
        committedIds: async () => {
          const r = await idsOnGroups(cluster, TABLE);
          duplicates = r.duplicates;
          return r.ids;
        },
        classOf: (id) => String(shardOf(id, shards)),
      },
      async action(elapsed) {
        const markers: Marker[] = [{ t: elapsed(), label: 'pgscale add-group' }];
        const t0 = Date.now();
        await ensureGroups(cluster, before + 1);
        addSeconds = (Date.now() - t0) / 1000;
        markers.push({ t: elapsed(), label: `group ${before} ready` });
        const r = await pgscaleCli(['rebalance', '-c', cluster.file, '--json']);
        if (r.code !== 0)
          throw new Error(`pgscale rebalance exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
        job = JSON.parse(r.stdout) as Job;
        const now = elapsed();
        for (const m of job.moves)
          if (m.finished_at)
            markers.push({
              t: now - (Date.now() - Date.parse(m.finished_at)) / 1000,
              label: `shard ${m.shard_id} → group ${m.to}${m.pause_ms === undefined ? '' : ` (${m.pause_ms} ms)`}`,
            });
        return markers;
      },
    });
    const done = job as Job | null;
    const l = run.load;
    const moves: MoveFigure[] = (done?.moves ?? []).map((m) => ({
      shardId: m.shard_id,
      shard: m.shard,
      from: m.from,
      to: m.to,
      pauseMs: m.pause_ms ?? null,
      slowestWriteMs: l.writesByClass[String(m.shard)]?.maxMs ?? null,
    }));
    const maxPause = Math.max(0, ...moves.map((m) => m.pauseMs ?? 0));
    const errors = l.write.errors;
    const figures = {
      groupsBefore: before,
      groupsAfter: cluster.groupCount(),
      addGroupSeconds: addSeconds,
      moves,
      acknowledged: l.acknowledged.length,
      lost: run.lost.length,
      duplicates,
      errors,
      errorsByKind: l.errorsByKind,
      writePauseSeconds: l.writeGap?.seconds ?? null,
      jobState: done?.state ?? null,
    };
    return {
      conclusion:
        `Under ${WRITERS} writers, a group was added in ${secs(addSeconds)} and ${moves.length} shard${moves.length === 1 ? '' : 's'} moved onto it; ` +
        `writes to a moving shard paused at most ${int(maxPause)} ms (the others never waited), the clients saw ${int(errors)} error${errors === 1 ? '' : 's'}, ` +
        `and ${int(run.lost.length)} of ${int(l.acknowledged.length)} acknowledged writes were lost (checked by id on every group).`,
      headline: `${moves.length} shards moved to group ${before}, max pause ${int(maxPause)} ms, ${int(run.lost.length)} of ${int(l.acknowledged.length)} lost`,
      figures,
      keyFigures: [
        { name: 'longest shard pause', unit: 'ms', value: maxPause },
        { name: 'add-group took', unit: 's', value: addSeconds },
        { name: 'acknowledged writes lost', unit: 'writes', value: run.lost.length },
        { name: 'client errors', unit: 'errors', value: errors },
      ],
      table: {
        headers: ['shard', 'from group', 'to group', 'write pause (move)', 'slowest write to it (client)'],
        rows: moves.map((m) => [
          m.shardId,
          m.from,
          m.to,
          m.pauseMs === null ? null : `${int(m.pauseMs)} ms`,
          m.slowestWriteMs === null ? null : `${int(m.slowestWriteMs)} ms`,
        ]),
      },
      notes: [
        `Acknowledged writes: ${int(l.acknowledged.length)}; lost: ${int(run.lost.length)}; found on two groups: ${int(duplicates)}; client errors: ${int(errors)}` +
          (Object.keys(l.errorsByKind).length
            ? ` (${Object.entries(l.errorsByKind)
                .map(([k, v]) => `${k}: ${v}`)
                .join(', ')})`
            : '') +
          '.',
      ],
      charts: [timelineChart(`Writes per second while group ${before} is added and shards move`, run)],
    };
  },
};
