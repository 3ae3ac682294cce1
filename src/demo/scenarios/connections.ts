/**
 * Scenario 2, connections are cheap through the proxy: many clients (1,000; fewer in --quick),
 * each with its own connection running short reads, first directly against the primary (its
 * max_connections raised for it), then through the proxy's transaction pool. The queries carry a
 * `/* pgscale:primary *\/` hint, harmless to PostgreSQL, so that through the proxy they also run on
 * the primary alone and only pooling differs. Figures: how long the logins took, reads/s, latency
 * percentiles, server connections PostgreSQL held (pg_stat_activity) and the memory of the
 * primary's processes (sum of PSS) while the clients were connected.
 */
import type { NodeStatus } from '../../cluster/status.js';
import type { DemoCluster } from '../cluster.js';
import { int, mb, ms, ratio, seconds as secs } from '../format.js';
import { PERCENTILE_POINTS } from '../histogram.js';
import { Load } from '../load.js';
import type { Endpoint, LoadResult } from '../load.js';
import { treeMemory } from '../measure.js';
import type { Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { pgbouncerVersion, startPgBouncer } from '../pgbouncer.js';
import { findTool, pgbouncerNote } from '../tools.js';

export const HINT = '/* pgscale:primary */';

export type Target = 'direct' | 'proxy' | 'pgbouncer';

const LABEL: Record<Target, string> = {
  direct: 'direct to PostgreSQL',
  proxy: 'through the proxy',
  pgbouncer: 'through PgBouncer',
};

export interface TargetFigures {
  target: Target;
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
  /** Client backends of the application the clients added on the primary (while connected, less before). */
  serverConnections: number | null;
  /** Sum of PSS of the primary's processes, before the clients connected and while they were. */
  memoryIdleBytes: number | null;
  memoryBytes: number | null;
  curve: { p: number; ms: number }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Client backends of the app on `primary`, known before the load: while 1,000 clients saturate it,
 * `pgscale status`'s probe (a 5 s login deadline) may not get in, and the primary would look down.
 */
async function serverConnections(cluster: DemoCluster, primary: NodeStatus): Promise<number> {
  const c = await cluster.superClient(primary);
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
  target: Target,
  endpoint: Endpoint,
  clients: number,
  seconds: number,
  progressBase: number,
  progressSpan: number,
): Promise<TargetFigures> {
  const { cluster, progress } = ctx;
  const primary = await cluster.primary();
  const idle = primary.pid ? treeMemory(primary.pid) : null;
  // Connections another pool keeps open (the proxy's, after its turn) are not this target's.
  const already = await serverConnections(cluster, primary);
  const load = new Load({
    endpoint,
    groups: [{ kind: 'read', clients }],
    keys: ctx.settings.keys,
    comment: HINT,
    // One-shot statements for every target: PgBouncer before 1.21 cannot keep named ones.
    unnamed: true,
    connectConcurrency: 50,
  });
  const label = LABEL[target];
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
    await sleep(ctx.settings.quick ? 500 : 1000);
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
      conns = (await serverConnections(cluster, primary)) - already;
      mem = primary.pid ? (treeMemory(primary.pid)?.pss ?? null) : null;
      await sleep((seconds * 1000) / 2);
    } finally {
      clearInterval(timer);
    }
  } finally {
    clearInterval(opening);
    r = await load.stop();
  }
  // The direct clients' backends end before the next target is measured: 200 backends exiting
  // on a primary capped at a quarter of a core took the next target's first seconds (the proxy,
  // measured right after them, did a third of PgBouncer's reads/s). A pool's connections stay.
  if (target === 'direct')
    for (let i = 0; i < 150 && (await serverConnections(cluster, primary)) > already; i++) await sleep(100);
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

/** The sentence and the summary line, from direct (d), the proxy (p) and PgBouncer (b) when run. */
export function concludeConnections(
  d: TargetFigures,
  p: TargetFigures,
  b: TargetFigures | null,
): Pick<ScenarioOutcome, 'conclusion' | 'headline'> {
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
  const bouncer = b
    ? ` Through PgBouncer (same pool size, same primary): ${int(b.readsPerSecond)} reads/s (${ratio(b.readsPerSecond / Math.max(d.readsPerSecond, 1e-9))} direct), ` +
      `p99 ${ms(b.p99Ms)} ms, ${b.serverConnections === null ? '?' : int(b.serverConnections)} server connections.`
    : '';
  return {
    conclusion: `With ${int(p.clients)} clients through the proxy, ${parts.join(', ')}${tail}.${bouncer}`,
    headline:
      `${int(p.clients)} clients: ${p.serverConnections ?? '?'} server connections via the proxy vs ${d.serverConnections === null ? '?' : int(d.serverConnections)} direct` +
      (d.memoryBytes !== null && p.memoryBytes !== null
        ? `, ${mb(p.memoryBytes)} vs ${mb(d.memoryBytes)}`
        : '') +
      `, ${ratio(tp)} throughput` +
      (b ? `; PgBouncer ${ratio(b.readsPerSecond / Math.max(d.readsPerSecond, 1e-9))}` : ''),
  };
}

function noteOf(t: TargetFigures): string {
  return (
    `${t.target}: ${int(t.connected)} connected in ${secs(t.connectSeconds)}, ${int(t.readsPerSecond)} reads/s, ` +
    `p99 ${ms(t.p99Ms)} ms, ${t.serverConnections ?? '?'} server connections` +
    (t.memoryBytes !== null ? `, ${mb(t.memoryBytes)}` : '')
  );
}

export const connections: Scenario = {
  id: 'connections',
  title: 'Connections are cheap through the proxy',
  unavailable: () => null,
  async run(ctx: ScenarioContext): Promise<ScenarioOutcome> {
    const { cluster, settings, progress } = ctx;
    const clients = settings.quick ? 200 : 1000;
    const seconds = settings.quick ? 2 : 8;
    const poolSize = cluster.config.proxy.default_pool_size;
    const tool = findTool('pgbouncer');
    const span = tool.path ? 1 / 3 : 1 / 2;
    const primary = await cluster.primary();
    const direct = await ctx.phase('direct', () =>
      measureTarget(ctx, 'direct', cluster.endpoint(primary), clients, seconds, 0, span),
    );
    progress.note(noteOf(direct));
    const proxy = await ctx.phase('proxy', () =>
      measureTarget(ctx, 'proxy', cluster.endpoint(), clients, seconds, span, span),
    );
    progress.note(noteOf(proxy));
    let bouncer: TargetFigures | null = null;
    let version: string | null = null;
    if (tool.path) {
      const path = tool.path;
      version = pgbouncerVersion(path);
      bouncer = await ctx.phase('pgbouncer', async () => {
        const b = await startPgBouncer(cluster, { path, poolSize, maxClients: clients + 50 });
        try {
          return await measureTarget(ctx, 'pgbouncer', b.endpoint, clients, seconds, 2 * span, span);
        } finally {
          await b.stop();
        }
      });
      progress.note(noteOf(bouncer));
    }
    const all = bouncer ? [direct, proxy, bouncer] : [direct, proxy];
    return {
      ...concludeConnections(direct, proxy, bouncer),
      figures: {
        clients,
        seconds,
        poolSize,
        maxConnections: cluster.config.postgres.parameters.max_connections,
        direct,
        proxy,
        pgbouncer: bouncer,
        pgbouncerVersion: version,
      },
      notes: [pgbouncerNote(tool, version, poolSize)],
      keyFigures: all.flatMap((t) => [
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
        rows: all.map((t) => [
          LABEL[t.target],
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
          series: all.map((t) => ({ name: LABEL[t.target], points: t.curve })),
        },
      ],
    };
  },
};
