/**
 * Scenario 3, surviving a primary failure: steady writes and reads through the proxy while the
 * primary's postmaster is killed with kill -9, once per synchronous mode (`replication.synchronous`
 * off — the default — then on, the opt-in; applied in between with `pgscale reload`, no restart). Figures: the timeline, the longest time without a
 * successful write, errors by kind, acknowledged commits missing afterwards (none may be missing
 * with synchronous replication), and how long until the old primary was back as a replica.
 * Needs automatic failover (the `ha` section of pgscale.yaml); skipped in builds without it.
 */
import { haAvailable, pgscaleCli } from '../cluster.js';
import { int, seconds as secs } from '../format.js';
import type { Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { patroniNote } from '../tools.js';
import { timelineChart, underLoad } from './under-load.js';
import type { UnderLoadResult } from './under-load.js';

export const HA_MISSING = 'high availability not available in this build';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface FailoverFigures {
  synchronous: 'on' | 'off';
  killed: string;
  promoted: string | null;
  writePauseSeconds: number | null;
  acknowledged: number;
  lost: number;
  inDoubt: number;
  inDoubtCommitted: number;
  errors: number;
  errorsByKind: Record<string, number>;
  rejoinedAfterSeconds: number | null;
  events: UnderLoadResult['events'];
}

async function failoverOnce(
  ctx: ScenarioContext,
  mode: 'on' | 'off',
  base: number,
  span: number,
): Promise<{ figures: FailoverFigures; run: UnderLoadResult }> {
  const { cluster } = ctx;
  if (cluster.config.replication.synchronous !== mode) {
    // Applied online, as a user would: the nodes and the HA service take it without a restart.
    ctx.progress.note(`replication.synchronous: ${mode}, applied with pgscale reload`);
    await ctx.phase(`reload (synchronous ${mode})`, async () => {
      cluster.setSynchronous(mode);
      const r = await pgscaleCli(['reload', '-c', cluster.file]);
      if (r.code !== 0) throw new Error(`pgscale reload exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
      // The figure is only about the mode the primary really runs in.
      const c = await cluster.superClient(await cluster.primary());
      try {
        const names = (
          await c.query<{ s: string }>('SELECT current_setting($1) AS s', ['synchronous_standby_names'])
        ).rows[0]!.s;
        if ((names !== '') !== (mode === 'on'))
          throw new Error(`after pgscale reload the primary's synchronous_standby_names is '${names}'`);
      } finally {
        await c.end();
      }
    });
  }
  const before = ctx.settings.quick ? 1 : 5;
  const after = ctx.settings.quick ? 2 : 8;
  let killed = '';
  let killedAt = 0;
  const run = await ctx.phase(`kill -9 under load, synchronous ${mode}`, () =>
    underLoad(ctx, {
      label: `kill -9 of the primary, synchronous ${mode}`,
      before,
      after,
      expectSeconds: before + after + 10,
      progressBase: base,
      progressSpan: span,
      async action(elapsed) {
        const p = await cluster.primary();
        if (!p.pid) throw new Error(`no pid for the primary ${p.name}`);
        killed = p.name;
        killedAt = Date.now();
        process.kill(p.pid, 'SIGKILL');
        const t = elapsed();
        // Over when another node is the primary (the proxy then sends writes there).
        const deadline = Date.now() + 120_000;
        for (;;) {
          const now = await cluster.status().catch(() => []);
          if (now.some((n) => n.role === 'primary' && n.state === 'running' && n.name !== killed)) break;
          if (Date.now() > deadline) throw new Error('no new primary within 120 s of the kill');
          await sleep(200);
        }
        return [{ t, label: `kill -9 ${killed}` }];
      },
    }),
  );
  // The old primary should come back by itself as a replica.
  const rejoined = await ctx.phase(`rejoin wait, synchronous ${mode}`, async () => {
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      const n = (await cluster.status().catch(() => [])).find((x) => x.name === killed);
      if (n?.role === 'replica' && n.streaming) return (Date.now() - killedAt) / 1000;
      await sleep(200);
    }
    return null;
  });
  const promoted = (await cluster.primary()).name;
  const r = run.load;
  return {
    run,
    figures: {
      synchronous: mode,
      killed,
      promoted,
      writePauseSeconds: r.writeGap?.seconds ?? null,
      acknowledged: r.acknowledged.length,
      lost: run.lost.length,
      inDoubt: r.inDoubt.length,
      inDoubtCommitted: run.inDoubtCommitted,
      errors: r.read.errors + r.write.errors,
      errorsByKind: r.errorsByKind,
      rejoinedAfterSeconds: rejoined,
      events: run.events,
    },
  };
}

const pauseText = (f: FailoverFigures) =>
  f.writePauseSeconds === null ? 'an unknown time' : secs(f.writePauseSeconds);

const modeText = (m: 'on' | 'off') =>
  m === 'off'
    ? 'asynchronous replication (the default)'
    : 'synchronous replication (replication.synchronous: on)';

/** The sentence and the summary line: the default first, then the opt-in, each with its losses. */
export function concludeFailover(figs: readonly FailoverFigures[]): { conclusion: string; headline: string } {
  const parts = figs.map(
    (f) =>
      `with ${modeText(f.synchronous)} writes stopped for ${pauseText(f)} and ${int(f.lost)} of ${int(f.acknowledged)} acknowledged commits were lost`,
  );
  const last = figs[figs.length - 1]!;
  const rejoin =
    last.rejoinedAfterSeconds === null
      ? `${last.killed} had not rejoined as a replica by the end.`
      : `${last.killed} rejoined as a replica ${secs(last.rejoinedAfterSeconds)} after the kill.`;
  const conclusion = `After kill -9 of the primary, ${parts.join('; ')}. ${rejoin}`;
  const headline = figs
    .map((f) => `${f.synchronous === 'off' ? 'async' : 'sync'}: pause ${pauseText(f)}, ${int(f.lost)} lost`)
    .join('; ');
  return { conclusion, headline };
}

export const failover: Scenario = {
  id: 'failover',
  title: 'Surviving a primary failure',
  unavailable: () => (haAvailable() ? null : HA_MISSING),
  async run(ctx: ScenarioContext): Promise<ScenarioOutcome> {
    // The default first (asynchronous), then the opt-in.
    const modes: ('on' | 'off')[] = ['off', 'on'];
    const results: { figures: FailoverFigures; run: UnderLoadResult }[] = [];
    for (const [i, mode] of modes.entries()) {
      const r = await failoverOnce(ctx, mode, i / modes.length, 1 / modes.length);
      results.push(r);
      const f = r.figures;
      ctx.progress.note(
        `synchronous ${mode}: ${f.killed} killed, ${f.promoted ?? '?'} promoted; no writes for ` +
          `${f.writePauseSeconds === null ? '?' : secs(f.writePauseSeconds)}; ${int(f.lost)} of ${int(f.acknowledged)} acknowledged writes lost; ` +
          (f.rejoinedAfterSeconds === null
            ? 'old primary not back yet'
            : `old primary back as a replica after ${secs(f.rejoinedAfterSeconds)}`),
      );
    }
    const figs = results.map((r) => r.figures);
    const { conclusion, headline } = concludeFailover(figs);
    return {
      conclusion,
      headline,
      figures: { runs: figs },
      notes: [patroniNote()],
      keyFigures: figs.flatMap((f) => [
        ...(f.writePauseSeconds === null
          ? []
          : [{ name: `write pause, synchronous ${f.synchronous}`, unit: 's', value: f.writePauseSeconds }]),
        { name: `acknowledged commits lost, synchronous ${f.synchronous}`, unit: 'commits', value: f.lost },
      ]),
      table: {
        headers: [
          'synchronous',
          'killed',
          'promoted',
          'no writes for',
          'acknowledged',
          'lost',
          'in doubt (committed)',
          'errors',
          'rejoined after',
        ],
        rows: figs.map((f) => [
          f.synchronous,
          f.killed,
          f.promoted,
          f.writePauseSeconds === null ? null : secs(f.writePauseSeconds),
          int(f.acknowledged),
          int(f.lost),
          `${int(f.inDoubt)} (${int(f.inDoubtCommitted)})`,
          `${int(f.errors)} ${Object.entries(f.errorsByKind)
            .map(([k, v]) => `${k}: ${v}`)
            .join(', ')}`.trim(),
          f.rejoinedAfterSeconds === null ? 'not yet' : secs(f.rejoinedAfterSeconds),
        ]),
      },
      charts: results.map((r) =>
        timelineChart(
          `Operations per second, kill -9 of the primary (${r.figures.synchronous === 'off' ? 'asynchronous, the default' : 'synchronous: on'})`,
          r.run,
        ),
      ),
    };
  },
};
