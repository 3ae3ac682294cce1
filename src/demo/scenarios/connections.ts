/**
 * Scenario 2, connections are cheap through the proxy: many clients (1,000; fewer in --quick),
 * each with its own connection running short reads, first directly against the primary (its
 * max_connections raised for it), then through the proxy's transaction pool. The queries carry a
 * `/* pgscale:primary *\/` hint, harmless to PostgreSQL, so that through the proxy they also run on
 * the primary alone and only pooling differs. Figures: how long the logins took, reads/s, latency
 * percentiles, server connections PostgreSQL held (pg_stat_activity) and the memory of the
 * primary's processes (sum of PSS) while the clients were connected.
 */
import type { DemoCluster } from '../cluster.js';
import { int, mb, ms, ratio, seconds as secs } from '../format.js';
import { PERCENTILE_POINTS } from '../histogram.js';
import { Load } from '../load.js';
import type { Endpoint, LoadResult } from '../load.js';
import { treeMemory } from '../measure.js';
import type { Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { pgbouncerNote } from '../tools.js';

export const HINT = '/* pgscale:primary */';

export interface TargetFigures {
  target: 'direct' | 'proxy';
  clients: number;
  connected: number;
  connectErrors: Record<string, number>;
  connectSeconds: number;
  readsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  errors: number;
  errorsByKind: Record<string, number>;
  /** Client backends of the application on the primary while the clients were connected. */
  serverConnections: number | null;
  /** Sum of PSS of the primary's processes, before the clients connected and while they were. */
  memoryIdleBytes: number | null;
  memoryBytes: number | null;
  curve: { p: number; ms: number }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function serverConnections(cluster: DemoCluster): Promise<number> {
  const p = await cluster.primary();
  const c = await cluster.superClient(p);
  try {
    const r = await c.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = $1",
      [cluster.config.app.user],
    );
    return r.rows[0]!.n;
  } finally {
    await c.end();
  }
}

async function measureTarget(
  ctx: ScenarioContext,
  target: 'direct' | 'proxy',
  endpoint: Endpoint,
  clients: number,
  seconds: number,
  progressBase: number,
  progressSpan: number,
): Promise<TargetFigures> {
  const { cluster, progress } = ctx;
  const primary = await cluster.primary();
  const idle = primary.pid ? treeMemory(primary.pid) : null;
  const load = new Load({
    endpoint,
    groups: [{ kind: 'read', clients }],
    keys: ctx.settings.keys,
    comment: HINT,
    connectConcurrency: 50,
  });
  const label = target === 'direct' ? 'direct to PostgreSQL' : 'through the proxy';
  const opening = setInterval(
    () => progress.update(progressBase, `${label}: ${int(load.connected)}/${int(clients)} clients connected`),
    250,
  );
  let r: LoadResult;
  let conns: number | null = null;
  let mem: number | null = null;
  try {
    await load.open();
    clearInterval(opening);
    await sleep(1000);
    load.start();
    const timer = setInterval(() => {
      const l = load.live();
      progress.update(
        progressBase + (progressSpan * l.seconds) / seconds,
        `${label}: ${int(clients)} clients, ${int(l.readOk / Math.max(0.001, l.seconds))} reads/s`,
      );
    }, 250);
    try {
      await sleep((seconds * 1000) / 2);
      conns = await serverConnections(cluster);
      mem = primary.pid ? (treeMemory(primary.pid)?.pss ?? null) : null;
      await sleep((seconds * 1000) / 2);
    } finally {
      clearInterval(timer);
    }
  } finally {
    clearInterval(opening);
    r = await load.stop();
  }
  const s = r.read.latency.summary();
  return {
    target,
    clients,
    connected: r.connected,
    connectErrors: r.connectErrors,
    connectSeconds: r.connectSeconds,
    readsPerSecond: r.read.ok / r.seconds,
    p50Ms: s.p50 / 1000,
    p99Ms: s.p99 / 1000,
    p999Ms: s.p999 / 1000,
    errors: r.read.errors,
    errorsByKind: r.errorsByKind,
    serverConnections: conns,
    memoryIdleBytes: idle?.pss ?? null,
    memoryBytes: mem,
    curve: r.read.latency.curve(PERCENTILE_POINTS).map((x) => ({ p: x.p, ms: x.us / 1000 })),
  };
}

function conclude(d: TargetFigures, p: TargetFigures): Pick<ScenarioOutcome, 'conclusion' | 'headline'> {
  const parts: string[] = [];
  if (d.serverConnections !== null && p.serverConnections !== null)
    parts.push(
      `PostgreSQL held ${int(p.serverConnections)} server connections instead of ${int(d.serverConnections)}`,
    );
  if (d.memoryBytes !== null && p.memoryBytes !== null)
    parts.push(`its processes used ${mb(p.memoryBytes)} of memory instead of ${mb(d.memoryBytes)}`);
  const tp = p.readsPerSecond / Math.max(d.readsPerSecond, 1e-9);
  parts.push(
    `throughput was ${ratio(tp)} that of direct connections (${int(p.readsPerSecond)} vs ${int(d.readsPerSecond)} reads/s) ` +
      `with p99 latency ${ms(p.p99Ms)} ms vs ${ms(d.p99Ms)} ms`,
  );
  const failed = d.clients - d.connected;
  const tail = failed > 0 ? `; directly, ${int(failed)} of the clients could not even connect` : '';
  return {
    conclusion: `With ${int(p.clients)} clients through the proxy, ${parts.join(', ')}${tail}.`,
    headline:
      `${int(p.clients)} clients: ${p.serverConnections ?? '?'} server connections via the proxy vs ${d.serverConnections === null ? '?' : int(d.serverConnections)} direct` +
      (d.memoryBytes !== null && p.memoryBytes !== null
        ? `, ${mb(p.memoryBytes)} vs ${mb(d.memoryBytes)}`
        : '') +
      `, ${ratio(tp)} throughput`,
  };
}

export const connections: Scenario = {
  id: 'connections',
  title: 'Connections are cheap through the proxy',
  unavailable: () => null,
  async run(ctx: ScenarioContext): Promise<ScenarioOutcome> {
    const { cluster, settings, progress } = ctx;
    const clients = settings.quick ? 200 : 1000;
    const seconds = settings.quick ? 3 : 10;
    const primary = await cluster.primary();
    const direct = await measureTarget(ctx, 'direct', cluster.endpoint(primary), clients, seconds, 0, 0.5);
    progress.note(
      `direct: ${int(direct.connected)} connected in ${secs(direct.connectSeconds)}, ${int(direct.readsPerSecond)} reads/s, ` +
        `p99 ${ms(direct.p99Ms)} ms, ${direct.serverConnections ?? '?'} server connections` +
        (direct.memoryBytes !== null ? `, ${mb(direct.memoryBytes)}` : ''),
    );
    const proxy = await measureTarget(ctx, 'proxy', cluster.endpoint(), clients, seconds, 0.5, 0.5);
    progress.note(
      `proxy: ${int(proxy.connected)} connected in ${secs(proxy.connectSeconds)}, ${int(proxy.readsPerSecond)} reads/s, ` +
        `p99 ${ms(proxy.p99Ms)} ms, ${proxy.serverConnections ?? '?'} server connections` +
        (proxy.memoryBytes !== null ? `, ${mb(proxy.memoryBytes)}` : ''),
    );
    const both = [direct, proxy];
    return {
      ...conclude(direct, proxy),
      figures: {
        clients,
        seconds,
        maxConnections: cluster.config.postgres.parameters.max_connections,
        direct,
        proxy,
      },
      notes: [pgbouncerNote()],
      keyFigures: both.flatMap((t) => [
        { name: `reads/s, ${t.target}`, unit: 'reads/s', value: t.readsPerSecond },
        { name: `p99, ${t.target}`, unit: 'ms', value: t.p99Ms },
        ...(t.serverConnections === null
          ? []
          : [{ name: `server connections, ${t.target}`, unit: 'connections', value: t.serverConnections }]),
        ...(t.memoryBytes === null
          ? []
          : [{ name: `memory, ${t.target}`, unit: 'MB', value: t.memoryBytes / 2 ** 20 }]),
      ]),
      table: {
        headers: [
          'target',
          'clients connected',
          'login time',
          'reads/s',
          'p50 ms',
          'p99 ms',
          'p99.9 ms',
          'errors',
          'server connections',
          'PostgreSQL memory (idle → loaded)',
        ],
        rows: both.map((t) => [
          t.target === 'direct' ? 'direct to PostgreSQL' : 'through the proxy',
          `${int(t.connected)} of ${int(t.clients)}`,
          secs(t.connectSeconds),
          int(t.readsPerSecond),
          ms(t.p50Ms),
          ms(t.p99Ms),
          ms(t.p999Ms),
          t.errors,
          t.serverConnections,
          t.memoryBytes === null || t.memoryIdleBytes === null
            ? null
            : `${mb(t.memoryIdleBytes)} → ${mb(t.memoryBytes)}`,
        ]),
      },
      charts: [
        {
          type: 'percentiles',
          title: `Latency by percentile, ${int(clients)} clients`,
          series: both.map((t) => ({
            name: t.target === 'direct' ? 'direct to PostgreSQL' : 'through the proxy',
            points: t.curve,
          })),
        },
      ],
    };
  },
};
