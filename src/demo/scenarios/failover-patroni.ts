/**
 * The failover scenario's comparison (full run only): the same fault — kill -9 of the primary's
 * postmaster — under the same load (8 writers, 8 readers) against Patroni + etcd with Patroni's
 * documented defaults, on nodes under the same CPU cap. Patroni puts nothing in front of the
 * nodes, so the clients do what libpq does with a host list and `target_session_attrs=read-write`:
 * try the three servers in turn and keep the first that accepts writes (no HAProxy, whose health
 * checks would add their own delay). Figures: the write pause, acknowledged commits lost, and who
 * the primary was afterwards (Patroni restarts a crashed primary in place while it still holds
 * the leader key, rather than failing over).
 */
import { runningPid } from '../../cluster/instance.js';
import { connectReadWrite } from '../load.js';
import { PATRONI_DEFAULTS, startPatroni, toolVersion } from '../patroni.js';
import type { PatroniTimings } from '../patroni.js';
import type { ScenarioContext } from '../scenario.js';
import { underLoad, writeLoss } from './under-load.js';
import type { UnderLoadResult, WriteLoss } from './under-load.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface PatroniFigures extends WriteLoss {
  versions: { patroni: string | null; etcd: string | null };
  timings: PatroniTimings;
  /** Seconds from nothing to a leader with its standbys streaming and the demo's tables. */
  startSeconds: number;
  killed: string;
  /** The primary afterwards: the killed member itself when Patroni restarted it in place. */
  primaryAfter: string | null;
}

/** `ttl 30, loop_wait 10, retry_timeout 10` */
export const timingsText = (t: PatroniTimings) =>
  `ttl ${t.ttl}, loop_wait ${t.loopWait}, retry_timeout ${t.retryTimeout}`;

export async function patroniFailover(
  ctx: ScenarioContext,
  tools: { patroni: string; etcd: string },
  progress: { base: number; span: number },
  timings: PatroniTimings = PATRONI_DEFAULTS,
): Promise<{ figures: PatroniFigures; run: UnderLoadResult }> {
  const quick = ctx.settings.quick;
  const t0 = Date.now();
  ctx.progress.update(progress.base, 'Patroni + etcd: starting a primary and 2 standbys');
  const pc = await ctx.phase('Patroni + etcd start', () =>
    startPatroni(ctx.cluster, {
      ...tools,
      standbys: 2,
      timings,
      keys: ctx.settings.keys,
      cap: (g, pid) => ctx.capProcess(g, pid),
    }),
  );
  const startSeconds = (Date.now() - t0) / 1000;
  try {
    let killed = '';
    const run = await ctx.phase('kill -9 under load, Patroni', () =>
      underLoad(ctx, {
        label: 'kill -9 of the primary, Patroni + etcd',
        // Shorter than pgscale's runs: the pause is the longest gap, whatever comes before and after.
        before: quick ? 2 : 3,
        after: quick ? 2 : 3,
        expectSeconds: 6 + timings.loopWait + 3,
        progressBase: progress.base,
        progressSpan: progress.span,
        target: { endpoint: pc.endpoint, readWriteHosts: pc.hosts, committedIds: () => pc.committedIds() },
        async action(elapsed) {
          const l = await pc.leader();
          const pid = l ? runningPid(l.pgdata) : null;
          if (!l || pid === null) throw new Error('Patroni has no running leader');
          killed = l.name;
          process.kill(pid, 'SIGKILL');
          const t = elapsed();
          // Over when a server accepts writes again: a new postmaster (the killed one's socket died with it).
          const deadline = Date.now() + 120_000;
          for (;;) {
            const c = await connectReadWrite(pc.endpoint, pc.hosts, { connectionTimeoutMillis: 2000 }).catch(
              () => null,
            );
            if (c) {
              await c.end().catch(() => undefined);
              break;
            }
            if (Date.now() > deadline)
              throw new Error('Patroni: no server accepted writes within 120 s of the kill');
            await sleep(100);
          }
          return [
            { t, label: `kill -9 ${killed}` },
            { t: elapsed(), label: 'a server accepts writes again' },
          ];
        },
      }),
    );
    return {
      run,
      figures: {
        versions: { patroni: toolVersion(tools.patroni, 'Patroni'), etcd: toolVersion(tools.etcd, 'etcd') },
        timings,
        startSeconds,
        killed,
        primaryAfter: (await pc.leader())?.name ?? null,
        ...writeLoss(run),
      },
    };
  } finally {
    await ctx.phase('Patroni + etcd teardown', () => pc.stop());
  }
}
