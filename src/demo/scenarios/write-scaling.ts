/**
 * Scenario 5, writes scale with groups: the same write workload — many clients inserting rows by
 * key into a distributed table through the proxy — on 1, 2 and 4 groups (--quick: 1 and 2) of one
 * primary each,
 * every primary capped to the same CPU share. Each stage's table is created when the cluster has
 * that many groups, so its 8 shards are spread evenly over them; the proxy sends each insert to
 * the group of its key's shard. Figures: writes/s, p50/p99, the ratio to one group, and the share
 * of the rows each group took (counted on the groups themselves).
 */
import { int, ms, pct, ratio } from '../format.js';
import { runLoad } from '../load.js';
import { hostBusyMeter } from '../measure.js';
import { hostNotes } from './reads.js';
import type { Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { distribute, ensureGroups, rowsPerGroup } from '../sharded.js';

const WRITERS = 32;
/** Groups of each stage: --quick stops at 2 (each added group costs an initdb and a join). */
const stagesFor = (quick: boolean): readonly number[] => (quick ? [1, 2] : [1, 2, 4]);

export interface WriteStage {
  groups: number;
  writesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Share of the stage's rows each group holds, in group order. */
  shares: number[];
  /** Share of the host's cores busy during the stage (0–1), null where unknown. */
  hostBusy: number | null;
}

export function concludeWrites(
  stages: readonly WriteStage[],
): Pick<ScenarioOutcome, 'conclusion' | 'headline'> {
  const first = stages[0]!;
  const last = stages[stages.length - 1]!;
  const r = last.writesPerSecond / Math.max(first.writesPerSecond, 1e-9);
  const verb = r >= 1.5 ? 'scaled' : r >= 1.15 ? 'scaled modestly' : 'did not scale';
  return {
    conclusion:
      `Writes ${verb} with groups: the same inserts by key through the proxy ran at ${int(last.writesPerSecond)} writes/s on ` +
      `${last.groups} groups vs ${int(first.writesPerSecond)} on one (${ratio(r)}), p99 ${ms(last.p99Ms)} ms vs ${ms(first.p99Ms)} ms; ` +
      `each of the ${last.groups} groups took ${last.shares.map(pct).join(' / ')} of the rows.`,
    headline: `${ratio(r)} the writes/s of one group with ${last.groups} groups (${int(first.writesPerSecond)} -> ${int(last.writesPerSecond)}/s)`,
  };
}

export const writeScaling: Scenario = {
  id: 'write-scaling',
  title: 'Writes scale with groups (sharding)',
  unavailable: () => null,
  async run(ctx: ScenarioContext): Promise<ScenarioOutcome> {
    const { settings, progress } = ctx;
    const cluster = await ctx.sharded();
    const seconds = settings.quick ? 2 : 8;
    const warmup = settings.quick ? 1 : 2;
    const stages: WriteStage[] = [];
    const STAGES = stagesFor(settings.quick);
    for (const [i, groups] of STAGES.entries()) {
      progress.update(i / STAGES.length, `${groups} group${groups > 1 ? 's' : ''}: preparing`);
      if (cluster.groupCount() < groups)
        await ctx.phase(`add-group to ${groups}`, () => ensureGroups(cluster, groups));
      if (cluster.groupCount() !== groups)
        throw new Error(
          `the sharding cluster has ${cluster.groupCount()} groups, this stage needs ${groups}`,
        );
      const table = `demo_w${groups}`;
      await distribute(cluster, table);
      let busy: () => number | null = () => null;
      const r = await ctx.phase(`${groups} group${groups > 1 ? 's' : ''}`, () =>
        runLoad(
          {
            endpoint: cluster.endpoint(),
            groups: [{ kind: 'write', clients: WRITERS }],
            keys: 1,
            writeSql: `INSERT INTO ${table} (id, client) VALUES ($1, $2)`,
            firstWriteId: ctx.nextWriteId(10_000_000),
          },
          {
            seconds,
            warmupSeconds: warmup,
            onStart: () => (busy = hostBusyMeter()),
            tick: (l) => {
              const live = l.live();
              progress.update(
                (i + live.seconds / seconds) / STAGES.length,
                `${groups} group${groups > 1 ? 's' : ''}: ${int(live.writeOk / Math.max(live.seconds, 0.001))} writes/s`,
              );
            },
          },
        ),
      );
      const rows = await rowsPerGroup(cluster, table);
      const total = rows.reduce((a, b) => a + b, 0);
      const s = r.write.latency.summary();
      const st: WriteStage = {
        groups,
        writesPerSecond: r.write.ok / r.seconds,
        p50Ms: s.p50 / 1000,
        p99Ms: s.p99 / 1000,
        errors: r.write.errors,
        shares: rows.map((n) => (total > 0 ? n / total : 0)),
        hostBusy: busy(),
      };
      stages.push(st);
      progress.note(
        `${groups} group${groups > 1 ? 's' : ''}: ${int(st.writesPerSecond)} writes/s, p50 ${ms(st.p50Ms)} ms, p99 ${ms(st.p99Ms)} ms, ` +
          `shares ${st.shares.map(pct).join(' / ')}` +
          (st.errors ? `, ${st.errors} errors` : ''),
      );
    }
    const base = stages[0]!.writesPerSecond;
    return {
      ...concludeWrites(stages),
      notes: hostNotes(settings, Math.max(...stages.map((s) => s.hostBusy ?? 0))),
      figures: {
        writers: WRITERS,
        seconds,
        warmupSeconds: warmup,
        shards: 8,
        stages,
        ratio: stages[stages.length - 1]!.writesPerSecond / base,
      },
      keyFigures: [
        ...stages.map((s) => ({
          name: `writes/s, ${s.groups} group(s)`,
          unit: 'writes/s',
          value: s.writesPerSecond,
        })),
        ...stages.map((s) => ({ name: `p99, ${s.groups} group(s)`, unit: 'ms', value: s.p99Ms })),
      ],
      table: {
        headers: [
          'groups',
          'writes/s',
          'x one group',
          'p50 ms',
          'p99 ms',
          'errors',
          'share of the rows per group',
        ],
        rows: stages.map((s) => [
          s.groups,
          int(s.writesPerSecond),
          ratio(s.writesPerSecond / base),
          ms(s.p50Ms),
          ms(s.p99Ms),
          s.errors,
          s.shares.map((x, g) => `g${g} ${pct(x)}`).join(', '),
        ]),
      },
      charts: [
        {
          type: 'bars',
          title: `Writes per second by number of groups (${WRITERS} clients inserting by key)`,
          unit: 'writes/s',
          xLabel: 'groups (one primary each, same CPU cap)',
          bars: stages.map((s) => ({
            label: `${s.groups} group${s.groups > 1 ? 's' : ''}`,
            value: s.writesPerSecond,
            note: `${int(s.writesPerSecond)}/s · ${ratio(s.writesPerSecond / base)} · p99 ${ms(s.p99Ms)} ms`,
          })),
        },
      ],
    };
  },
};
