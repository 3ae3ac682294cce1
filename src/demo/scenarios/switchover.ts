/**
 * Scenario 4, planned switchover: the same load as scenario 3 while `pgscale switchover` moves
 * the primary role to a replica. Figures: the longest time without a successful write, client
 * errors by kind, acknowledged writes lost (none expected), and how long the command took.
 * Needs high availability; skipped in builds without it.
 */
import { haAvailable, pgscaleCli } from '../cluster.js';
import { int, seconds as secs } from '../format.js';
import type { Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { HA_MISSING } from './failover.js';
import { timelineChart, underLoad } from './under-load.js';

export const switchover: Scenario = {
  id: 'switchover',
  title: 'Planned switchover',
  unavailable: () => (haAvailable() ? null : HA_MISSING),
  async run(ctx: ScenarioContext): Promise<ScenarioOutcome> {
    const { cluster } = ctx;
    const from = (await cluster.primary()).name;
    let commandSeconds = 0;
    const run = await underLoad(ctx, {
      label: 'pgscale switchover',
      before: ctx.settings.quick ? 1 : 5,
      after: ctx.settings.quick ? 2 : 5,
      expectSeconds: ctx.settings.quick ? 10 : 14,
      progressBase: 0,
      progressSpan: 1,
      async action(elapsed) {
        const t = elapsed();
        const t0 = Date.now();
        const r = await pgscaleCli(['switchover', '-c', cluster.file]);
        commandSeconds = (Date.now() - t0) / 1000;
        if (r.code !== 0)
          throw new Error(`pgscale switchover exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
        return [
          { t, label: 'pgscale switchover' },
          { t: elapsed(), label: 'switchover done' },
        ];
      },
    });
    const to = (await cluster.primary()).name;
    const r = run.load;
    const errors = r.read.errors + r.write.errors;
    const pause = r.writeGap?.seconds ?? null;
    const figures = {
      from,
      to,
      commandSeconds,
      writePauseSeconds: pause,
      acknowledged: r.acknowledged.length,
      lost: run.lost.length,
      errors,
      errorsByKind: r.errorsByKind,
      events: run.events,
    };
    return {
      conclusion:
        `A planned switchover from ${from} to ${to} under load paused writes for ${pause === null ? 'an unknown time' : secs(pause)}, ` +
        `gave clients ${int(errors)} error${errors === 1 ? '' : 's'} and lost ${int(run.lost.length)} of ${int(r.acknowledged.length)} acknowledged writes.`,
      headline: `write pause ${pause === null ? '?' : secs(pause)}, ${int(errors)} client errors, ${int(run.lost.length)} lost`,
      figures,
      keyFigures: [
        ...(pause === null ? [] : [{ name: 'write pause', unit: 's', value: pause }]),
        { name: 'client errors', unit: 'errors', value: errors },
        { name: 'acknowledged writes lost', unit: 'writes', value: run.lost.length },
        { name: 'command took', unit: 's', value: commandSeconds },
      ],
      table: {
        headers: ['from', 'to', 'command took', 'no writes for', 'acknowledged', 'lost', 'client errors'],
        rows: [
          [
            from,
            to,
            secs(commandSeconds),
            pause === null ? null : secs(pause),
            int(r.acknowledged.length),
            int(run.lost.length),
            `${int(errors)} ${Object.entries(r.errorsByKind)
              .map(([k, v]) => `${k}: ${v}`)
              .join(', ')}`.trim(),
          ],
        ],
      },
      charts: [timelineChart('Operations per second during pgscale switchover', run)],
    };
  },
};
