/**
 * Scenario 1, reads scale with replicas: the same read workload (many clients, each looking up
 * random rows by primary key) against the primary alone, directly, then through pgscale's proxy
 * in front of the primary and 1, then 2, of its replicas (reads split over them, the primary
 * taking the same share as a replica). Each node is capped to the same CPU share, so more nodes
 * should mean more reads per second. Figures: reads/s, p50/p99, and the ratio to the primary alone.
 * In a full run, where HAProxy is installed, the same clients through HAProxy balancing over the
 * same three nodes, as one more row (../haproxy.ts).
 */
import { availableParallelism } from 'node:os';
import type { DemoCluster, StandaloneProxy } from '../cluster.js';
import { int, ms, pct, ratio } from '../format.js';
import type { Endpoint, LoadResult } from '../load.js';
import { runLoad } from '../load.js';
import { haproxyVersion, startHaproxy } from '../haproxy.js';
import { hostBusyMeter } from '../measure.js';
import type { DemoSettings, Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { findTool, haproxyNote } from '../tools.js';

const CLIENTS = 32;

interface Stage {
  label: string;
  /** Replicas behind the proxy; null: the primary directly, no proxy. */
  replicas: number | null;
}

const STAGES: readonly Stage[] = [
  { label: 'primary alone', replicas: null },
  { label: 'proxy + 1 replica', replicas: 1 },
  { label: 'proxy + 2 replicas', replicas: 2 },
];

export interface StageFigures {
  label: string;
  nodes: number;
  readsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  errors: number;
  hostBusy: number | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the proxy's read set holds every replica it was given (its monitors poll them). */
async function waitReadSet(cluster: DemoCluster, proxy: StandaloneProxy, replicas: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const rows = await cluster.showNodes(proxy.endpoint.port).catch(() => []);
    if (rows.filter((r) => r.role === 'replica' && r.inReadSet).length === replicas) return;
    if (Date.now() > deadline) throw new Error(`the proxy's read set did not reach ${replicas} replicas`);
    await sleep(100);
  }
}

async function stopAll(proxies: readonly (StandaloneProxy | null)[]): Promise<void> {
  for (const p of proxies) if (p) await p.stop();
}

/** Reads every row on every node once, so that no stage pays for a cold cache. */
async function warmCaches(cluster: DemoCluster): Promise<void> {
  const primary = await cluster.primary();
  const p = await cluster.superClient(primary);
  const lsn = (await p.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
  await p.end();
  for (const n of cluster.nodes()) {
    const c = await cluster.superClient(n);
    try {
      if (n.name !== primary.name) {
        const deadline = Date.now() + 60_000;
        while (
          !(await c.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]))
            .rows[0]?.ok
        ) {
          if (Date.now() > deadline) throw new Error(`${n.name} did not replay the demo's table`);
          await sleep(100);
        }
      }
      await c.query('SELECT sum(abalance) FROM demo_accounts');
      await c.query('SET enable_seqscan = off');
      await c.query('SELECT count(*) FROM demo_accounts WHERE aid > 0');
    } finally {
      await c.end();
    }
  }
}

const HAPROXY_LABEL = 'HAProxy + 2 replicas';

const stageLine = (f: StageFigures) =>
  `${f.label}: ${int(f.readsPerSecond)} reads/s, p50 ${ms(f.p50Ms)} ms, p99 ${ms(f.p99Ms)} ms` +
  (f.errors ? `, ${f.errors} errors` : '');

/** One stage: CLIENTS readers against `endpoint`, unmeasured for `warmup` s, then measured for `seconds`. */
async function measureStage(
  ctx: ScenarioContext,
  o: {
    label: string;
    nodes: number;
    endpoint: Endpoint;
    seconds: number;
    warmup: number;
    done: number;
    total: number;
  },
): Promise<StageFigures> {
  let busy: () => number | null = () => null;
  const r: LoadResult = await runLoad(
    { endpoint: o.endpoint, groups: [{ kind: 'read', clients: CLIENTS }], keys: ctx.settings.keys },
    {
      seconds: o.seconds,
      warmupSeconds: o.warmup,
      onStart: () => (busy = hostBusyMeter()),
      tick: (l) => {
        const live = l.live();
        ctx.progress.update(
          (o.done + o.warmup + live.seconds) / o.total,
          `${o.label}: ${int(live.readOk / Math.max(live.seconds, 0.001))} reads/s`,
        );
      },
    },
  );
  const s = r.read.latency.summary();
  return {
    label: o.label,
    nodes: o.nodes,
    readsPerSecond: r.read.ok / r.seconds,
    p50Ms: s.p50 / 1000,
    p99Ms: s.p99 / 1000,
    p999Ms: s.p999 / 1000,
    errors: r.read.errors,
    hostBusy: busy(),
  };
}

/**
 * The same clients through HAProxy balancing their connections round-robin over `nodes` (the
 * primary and the replicas of the proxy's last stage); HAProxy runs for this stage only.
 */
export async function measureHaproxy(
  ctx: ScenarioContext,
  path: string,
  nodes: readonly { name: string; host: string; port: number }[],
  o: { seconds: number; warmup: number; done: number; total: number },
): Promise<StageFigures> {
  const h = await ctx.phase('HAProxy start', () => startHaproxy(ctx.cluster, path, nodes));
  try {
    return await ctx.phase(HAPROXY_LABEL, () =>
      measureStage(ctx, { label: HAPROXY_LABEL, nodes: nodes.length, endpoint: h.endpoint, ...o }),
    );
  } finally {
    await h.stop();
  }
}

/** What the read scenario says of HAProxy: its figures beside the proxy's, and what it cannot do. */
export function concludeHaproxy(h: StageFigures, proxy: StageFigures, alone: StageFigures): string {
  return (
    `HAProxy balancing the same clients' connections round-robin over the same ${h.nodes} nodes served ` +
    `${int(h.readsPerSecond)} reads/s (${ratio(h.readsPerSecond / alone.readsPerSecond)} the primary alone; the proxy ${int(proxy.readsPerSecond)}), ` +
    `p50 ${ms(h.p50Ms)} ms, p99 ${ms(h.p99Ms)} ms.`
  );
}

/** What HAProxy cannot do that the proxy does, in one line. */
export const HAPROXY_LIMITS =
  "HAProxy balances connections, not statements: it cannot tell a write from a read (an application needs a second port for writes and must choose per query), cannot keep a session's reads on the primary after its own writes nor hold back reads from a lagging replica (its checks see a node up or down, not its lag), and pools nothing (every client is a server connection).";

export function conclude(
  stages: readonly StageFigures[],
  settings: Pick<DemoSettings, 'nodeCores' | 'loadAtStart'>,
): Pick<ScenarioOutcome, 'conclusion' | 'headline' | 'notes'> {
  const { nodeCores, loadAtStart } = settings;
  const first = stages[0]!;
  const last = stages[stages.length - 1]!;
  const r = last.readsPerSecond / first.readsPerSecond;
  const verb = r >= 1.5 ? 'scaled' : r >= 1.15 ? 'scaled modestly' : 'did not scale';
  const conclusion =
    `Reads ${verb} with replicas: through the proxy with ${last.nodes - 1} replicas the cluster served ` +
    `${ratio(r)} the reads per second of the primary alone (${int(last.readsPerSecond)} vs ${int(first.readsPerSecond)}), ` +
    `with p99 latency ${ms(last.p99Ms)} ms vs ${ms(first.p99Ms)} ms.`;
  const busy = Math.max(...stages.map((s) => s.hostBusy ?? 0));
  return {
    conclusion,
    notes: hostNotes({ nodeCores, loadAtStart }, busy),
    headline: `${ratio(r)} the reads/s of the primary alone with 2 replicas (${int(first.readsPerSecond)} -> ${int(last.readsPerSecond)}/s)`,
  };
}

/**
 * Caveats of a scaling figure measured on one host: uncapped nodes, other programs' load when the
 * demo started, and how busy the cores were (`busy`, 0–1, the highest of the stages).
 */
export function hostNotes(settings: Pick<DemoSettings, 'nodeCores' | 'loadAtStart'>, busy: number): string[] {
  const { nodeCores, loadAtStart } = settings;
  const notes: string[] = [];
  if (nodeCores === null)
    notes.push(
      'The nodes ran uncapped: they share every core of this host with each other, the proxy and the load generator, so adding nodes on one machine cannot add CPU, and the ratio says little about separate machines.',
    );
  const cores = availableParallelism();
  if (loadAtStart > cores / 2)
    notes.push(
      `Other programs were already using this host when the demo started (load average ${loadAtStart.toFixed(1)} on ${cores} cores): they competed for the CPU, so these figures are lower and noisier than on an idle machine.`,
    );
  if (busy > 0.85)
    notes.push(
      `The host's cores were up to ${pct(busy)} busy (nodes, proxy and load generator together): the proxy and the load generator competed with the nodes for CPU, so the ratio is a lower bound of what separate machines would give.`,
    );
  return notes;
}

export const readScaling: Scenario = {
  id: 'read-scaling',
  title: 'Reads scale with replicas',
  unavailable: () => null,
  async run(ctx: ScenarioContext): Promise<ScenarioOutcome> {
    const { cluster, settings, progress } = ctx;
    const seconds = settings.quick ? 2 : 8;
    const warmup = settings.quick ? 1 : 3;
    const primary = await cluster.primary();
    const replicas = cluster.nodes().filter((n) => n.name !== primary.name);
    // The proxies of the later stages start while the caches warm (both wait on other processes).
    const proxies = await ctx.phase('warm caches, start proxies', async () => {
      const started = STAGES.map((st) =>
        st.replicas === null
          ? Promise.resolve(null)
          : cluster.startProxy(replicas.slice(0, st.replicas), CLIENTS).then(async (p) => {
              await waitReadSet(cluster, p, st.replicas!);
              return p;
            }),
      );
      const warmed = await Promise.allSettled([warmCaches(cluster)]);
      const settled = await Promise.allSettled(started);
      const up = settled.map((x) => (x.status === 'fulfilled' ? x.value : null));
      const failed = [...warmed, ...settled].find((x) => x.status === 'rejected');
      if (failed) {
        await stopAll(up);
        throw failed.reason;
      }
      return up;
    });
    const tool = findTool('haproxy');
    const withHaproxy = !settings.quick && tool.path !== null;
    const stages: StageFigures[] = [];
    const total = (STAGES.length + (withHaproxy ? 1 : 0)) * (seconds + warmup);
    const measure = (label: string, nodes: number, endpoint: Endpoint, done: number) =>
      ctx.phase(label, () => measureStage(ctx, { label, nodes, endpoint, seconds, warmup, done, total }));
    for (const [i, stage] of STAGES.entries()) {
      const proxy: StandaloneProxy | null = proxies[i] ?? null;
      const endpoint: Endpoint = proxy?.endpoint ?? cluster.endpoint(primary);
      let f: StageFigures;
      try {
        f = await measure(stage.label, 1 + (stage.replicas ?? 0), endpoint, i * (seconds + warmup));
      } catch (e) {
        await stopAll(proxies);
        throw e;
      } finally {
        await proxy?.stop();
      }
      stages.push(f);
      progress.note(stageLine(f));
    }
    // The same clients through HAProxy, balancing their connections over the same three nodes.
    let haproxy: StageFigures | null = null;
    let haproxyVer: string | null = null;
    if (withHaproxy) {
      haproxyVer = haproxyVersion(tool.path!);
      haproxy = await measureHaproxy(ctx, tool.path!, [primary, ...replicas], {
        seconds,
        warmup,
        done: STAGES.length * (seconds + warmup),
        total,
      });
      progress.note(stageLine(haproxy));
    } else {
      progress.note(haproxyNote(tool, settings.quick));
    }
    const base = stages[0]!.readsPerSecond;
    const shown = haproxy ? [...stages, haproxy] : stages;
    const c = conclude(stages, settings);
    return {
      ...c,
      conclusion: haproxy
        ? `${c.conclusion} ${concludeHaproxy(haproxy, stages[stages.length - 1]!, stages[0]!)}`
        : c.conclusion,
      notes: [
        ...(c.notes ?? []),
        haproxy
          ? `HAProxy${haproxyVer ? ` (${haproxyVer.replace('HAProxy ', '')})` : ''} in TCP mode, balance roundrobin over the primary and both replicas, the same ${CLIENTS} clients. ${HAPROXY_LIMITS}`
          : haproxyNote(tool, settings.quick),
      ],
      figures: {
        clients: CLIENTS,
        seconds,
        warmupSeconds: warmup,
        stages,
        ratio: stages[stages.length - 1]!.readsPerSecond / base,
        haproxy,
        haproxyVersion: haproxyVer,
      },
      keyFigures: [
        ...shown.map((s) => ({ name: `reads/s, ${s.label}`, unit: 'reads/s', value: s.readsPerSecond })),
        ...shown.map((s) => ({ name: `p99, ${s.label}`, unit: 'ms', value: s.p99Ms })),
        {
          name: 'ratio to the primary alone',
          unit: '×',
          value: stages[stages.length - 1]!.readsPerSecond / base,
        },
      ],
      table: {
        headers: [
          'configuration',
          'nodes',
          'reads/s',
          'x primary alone',
          'p50 ms',
          'p99 ms',
          'p99.9 ms',
          'errors',
          'host busy',
        ],
        rows: shown.map((s) => [
          s.label,
          s.nodes,
          int(s.readsPerSecond),
          ratio(s.readsPerSecond / base),
          ms(s.p50Ms),
          ms(s.p99Ms),
          ms(s.p999Ms),
          s.errors,
          s.hostBusy === null ? null : pct(s.hostBusy),
        ]),
      },
      charts: [
        {
          type: 'bars',
          title: 'Reads per second by number of nodes',
          unit: 'reads/s',
          bars: shown.map((s) => ({
            label: `${s.label} (${s.nodes} node${s.nodes > 1 ? 's' : ''})`,
            value: s.readsPerSecond,
            note: `${int(s.readsPerSecond)}/s · ${ratio(s.readsPerSecond / base)} · p99 ${ms(s.p99Ms)} ms`,
          })),
        },
      ],
    };
  },
};
