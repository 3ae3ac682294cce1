/**
 * Scenario 3, surviving a primary failure: steady writes and reads through the proxy while the
 * primary's postmaster is killed with kill -9, once per synchronous mode (`replication.synchronous`
 * off — the default — then on, the opt-in; applied in between with `pgscale reload`, no restart). Figures: the timeline, the longest time without a
 * successful write, errors by kind, acknowledged commits missing afterwards (none may be missing
 * with synchronous replication), and how long until the old primary was back as a replica.
 * In a full run, where Patroni and etcd are installed, the same kill -9 under the same load
 * against Patroni + etcd with its defaults (./failover-patroni.ts), as one more row.
 * Needs automatic failover (the `ha` section of pgscale.yaml); skipped in builds without it.
 */
import { haAvailable, pgscaleCli } from '../cluster.js';
import { int, seconds as secs } from '../format.js';
import type { Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { findTool, patroniNote } from '../tools.js';
import { patroniFailover, timingsText } from './failover-patroni.js';
import type { PatroniFigures } from './failover-patroni.js';
import { timelineChart, underLoad, writeLoss } from './under-load.js';
import type { UnderLoadResult, WriteLoss } from './under-load.js';

export const HA_MISSING = 'high availability not available in this build';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface FailoverFigures extends WriteLoss {
  synchronous: 'on' | 'off';
  killed: string;
  promoted: string | null;
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
  return {
    run,
    figures: {
      synchronous: mode,
      killed,
      promoted,
      ...writeLoss(run),
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

/** The sentence and the summary line: the default first, then the opt-in, each with its losses; then Patroni's. */
export function concludeFailover(
  figs: readonly FailoverFigures[],
  patroni: PatroniFigures | null = null,
): { conclusion: string; headline: string } {
  const parts = figs.map(
    (f) =>
      `with ${modeText(f.synchronous)} writes stopped for ${pauseText(f)} and ${int(f.lost)} of ${int(f.acknowledged)} acknowledged commits were lost`,
  );
  const last = figs[figs.length - 1]!;
  const rejoin =
    last.rejoinedAfterSeconds === null
      ? `${last.killed} had not rejoined as a replica by the end.`
      : `${last.killed} rejoined as a replica ${secs(last.rejoinedAfterSeconds)} after the kill.`;
  const p = patroni;
  const pat = p
    ? ` With Patroni + etcd (its defaults: ${timingsText(p.timings)}, asynchronous), the same kill -9 stopped writes for ` +
      `${p.writePauseSeconds === null ? 'an unknown time' : secs(p.writePauseSeconds)} and ${int(p.lost)} of ${int(p.acknowledged)} acknowledged commits were lost` +
      (p.primaryAfter === p.killed ? ` (Patroni restarted ${p.killed} in place).` : '.')
    : '';
  const conclusion = `After kill -9 of the primary, ${parts.join('; ')}. ${rejoin}${pat}`;
  const headline =
    figs
      .map((f) => `${f.synchronous === 'off' ? 'async' : 'sync'}: pause ${pauseText(f)}, ${int(f.lost)} lost`)
      .join('; ') +
    (p
      ? `; Patroni: pause ${p.writePauseSeconds === null ? '?' : secs(p.writePauseSeconds)}, ${int(p.lost)} lost`
      : '');
  return { conclusion, headline };
}

const errorsText = (errors: number, byKind: Record<string, number>) =>
  `${int(errors)} ${Object.entries(byKind)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ')}`.trim();

/** Patroni's row of the table, beside pgscale's. */
export function patroniRow(p: PatroniFigures): (string | number | null)[] {
  return [
    `Patroni + etcd (${timingsText(p.timings)})`,
    'off',
    p.killed,
    p.primaryAfter === p.killed ? `none (${p.killed} restarted in place)` : p.primaryAfter,
    p.writePauseSeconds === null ? null : secs(p.writePauseSeconds),
    int(p.acknowledged),
    int(p.lost),
    `${int(p.inDoubt)} (${int(p.inDoubtCommitted)})`,
    errorsText(p.errors, p.errorsByKind),
    p.primaryAfter === p.killed ? 'n/a' : 'not measured',
  ];
}

/** The note of a run in which Patroni took part: what ran and how the clients found the primary. */
export function patroniRanNote(p: PatroniFigures): string {
  const v = [p.versions.patroni, p.versions.etcd].filter(Boolean).join(', ');
  return (
    `Patroni + etcd${v ? ` (${v})` : ''}: a primary and 2 standbys on the same PostgreSQL binaries and CPU cap, ` +
    `Patroni's documented defaults (${timingsText(p.timings)}, synchronous_mode off), one etcd member; started in ${secs(p.startSeconds)}. ` +
    'Nothing in front of its nodes: its clients try the three servers in turn and keep the first that accepts writes, ' +
    "as libpq's target_session_attrs=read-write does. Patroni restarts a crashed primary in place while it holds the leader key, " +
    'so the pause is the wait for its next loop (anywhere from 0 to loop_wait, by when the kill lands) plus crash recovery: it varies from run to run.'
  );
}

export const failover: Scenario = {
  id: 'failover',
  title: 'Surviving a primary failure',
  unavailable: () => (haAvailable() ? null : HA_MISSING),
  async run(ctx: ScenarioContext): Promise<ScenarioOutcome> {
    // The default first (asynchronous), then the opt-in.
    const modes: ('on' | 'off')[] = ['off', 'on'];
    const tools = { patroni: findTool('patroni'), etcd: findTool('etcd') };
    const withPatroni = !ctx.settings.quick && tools.patroni.path !== null && tools.etcd.path !== null;
    const parts = modes.length + (withPatroni ? 1 : 0);
    const results: { figures: FailoverFigures; run: UnderLoadResult }[] = [];
    for (const [i, mode] of modes.entries()) {
      const r = await failoverOnce(ctx, mode, i / parts, 1 / parts);
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
    let patroni: { figures: PatroniFigures; run: UnderLoadResult } | null = null;
    if (withPatroni) {
      const paths = { patroni: tools.patroni.path!, etcd: tools.etcd.path! };
      patroni = await patroniFailover(ctx, paths, { base: modes.length / parts, span: 1 / parts });
      const f = patroni.figures;
      ctx.progress.note(
        `Patroni + etcd (${timingsText(f.timings)}; started in ${secs(f.startSeconds)}): ${f.killed} killed, ` +
          `primary afterwards ${f.primaryAfter ?? '?'}; no writes for ${f.writePauseSeconds === null ? '?' : secs(f.writePauseSeconds)}; ` +
          `${int(f.lost)} of ${int(f.acknowledged)} acknowledged writes lost`,
      );
    } else {
      ctx.progress.note(patroniNote(tools.patroni, tools.etcd, ctx.settings.quick));
    }
    const figs = results.map((r) => r.figures);
    const pf = patroni?.figures ?? null;
    const { conclusion, headline } = concludeFailover(figs, pf);
    return {
      conclusion,
      headline,
      figures: { runs: figs, patroni: pf },
      notes: [pf ? patroniRanNote(pf) : patroniNote(tools.patroni, tools.etcd, ctx.settings.quick)],
      keyFigures: figs
        .flatMap((f) => [
          ...(f.writePauseSeconds === null
            ? []
            : [{ name: `write pause, synchronous ${f.synchronous}`, unit: 's', value: f.writePauseSeconds }]),
          { name: `acknowledged commits lost, synchronous ${f.synchronous}`, unit: 'commits', value: f.lost },
        ])
        .concat(
          pf
            ? [
                ...(pf.writePauseSeconds === null
                  ? []
                  : [{ name: 'write pause, Patroni', unit: 's', value: pf.writePauseSeconds }]),
                { name: 'acknowledged commits lost, Patroni', unit: 'commits', value: pf.lost },
              ]
            : [],
        ),
      table: {
        headers: [
          'cluster',
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
        rows: figs
          .map((f): (string | number | null)[] => [
            'pgscale',
            f.synchronous,
            f.killed,
            f.promoted,
            f.writePauseSeconds === null ? null : secs(f.writePauseSeconds),
            int(f.acknowledged),
            int(f.lost),
            `${int(f.inDoubt)} (${int(f.inDoubtCommitted)})`,
            errorsText(f.errors, f.errorsByKind),
            f.rejoinedAfterSeconds === null ? 'not yet' : secs(f.rejoinedAfterSeconds),
          ])
          .concat(pf ? [patroniRow(pf)] : []),
      },
      charts: results
        .map((r) =>
          timelineChart(
            `Operations per second, kill -9 of the primary (${r.figures.synchronous === 'off' ? 'asynchronous, the default' : 'synchronous: on'})`,
            r.run,
          ),
        )
        .concat(
          patroni
            ? [
                timelineChart(
                  `Operations per second, kill -9 of the primary, Patroni + etcd (${timingsText(patroni.figures.timings)})`,
                  patroni.run,
                ),
              ]
            : [],
        ),
    };
  },
};
