/**
 * The frame of the high-availability scenarios: steady writes and reads through the proxy while
 * a fault (kill -9 of the primary) or an operation (a switchover) happens, with a timeline in
 * 100 ms buckets, the longest time without a successful write, errors by kind, and — the promise that
 * matters — every acknowledged write compared with what the table holds afterwards on the
 * (new) primary. Also reads `pgscale history --json` (the HA event log) for the timeline's marks.
 */
import type { DemoCluster } from '../cluster.js';
import { pgscaleCli } from '../cluster.js';
import { int } from '../format.js';
import { Load } from '../load.js';
import type { Endpoint, LoadResult } from '../load.js';
import type { ScenarioContext, TimelineChart } from '../scenario.js';
import { ratesPerSecond } from '../timeline.js';

export interface HaEvent {
  at: string;
  group: number;
  event: string;
  node?: string;
  detail?: string;
}

export interface Marker {
  t: number;
  label: string;
}

export interface UnderLoadResult {
  load: LoadResult;
  markers: Marker[];
  /** Acknowledged writes missing from the table afterwards. */
  lost: number[];
  /** Writes whose outcome the clients never learned that did commit. */
  inDoubtCommitted: number;
  /** Rows in demo_writes after the run. */
  rows: number;
  events: HaEvent[];
}

/** What a fault under load cost the writers (the failover rows, pgscale's and Patroni's). */
export interface WriteLoss {
  /** The longest time without an acknowledged write; null when unknown. */
  writePauseSeconds: number | null;
  acknowledged: number;
  lost: number;
  inDoubt: number;
  inDoubtCommitted: number;
  errors: number;
  errorsByKind: Record<string, number>;
}

export function writeLoss(run: UnderLoadResult): WriteLoss {
  const r = run.load;
  return {
    writePauseSeconds: r.writeGap?.seconds ?? null,
    acknowledged: r.acknowledged.length,
    lost: run.lost.length,
    inDoubt: r.inDoubt.length,
    inDoubtCommitted: run.inDoubtCommitted,
    errors: r.read.errors + r.write.errors,
    errorsByKind: r.errorsByKind,
  };
}

export interface UnderLoadPlan {
  /** Seconds of steady load before the action. */
  before: number;
  /** The action; returns markers (t: seconds since the load started) and resolves when it is over. */
  action(elapsed: () => number): Promise<Marker[]>;
  /** Seconds of load after the action is over. */
  after: number;
  /** Label for the progress line. */
  label: string;
  /** Expected total seconds, for the progress bar. */
  expectSeconds: number;
  progressBase: number;
  progressSpan: number;
  /** Another workload than demo_writes and demo_accounts (the sharding scenarios'). */
  workload?: {
    cluster: DemoCluster;
    /** INSERT with $1 the id, $2 the client. */
    writeSql: string;
    writers: number;
    /** Ids in the table afterwards (every group's). */
    committedIds(): Promise<Set<number>>;
    classOf?: (id: number) => string;
  };
  /**
   * Another cluster than the demo's, with the same tables (Patroni's, for the comparison): the
   * servers the clients try in turn for a writable one, and the ids its demo_writes holds
   * afterwards. It has no pgscale history.
   */
  target?: {
    endpoint: Endpoint;
    readWriteHosts: readonly { host: string; port: number }[];
    committedIds(): Promise<Set<number>>;
  };
}

const WRITERS = 8;
const READERS = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The HA event log (`pgscale history -c FILE --json`), or [] when the build has none. */
export async function history(cluster: DemoCluster): Promise<HaEvent[]> {
  const r = await pgscaleCli(['history', '-c', cluster.file, '--json']);
  if (r.code !== 0) return [];
  try {
    const v = JSON.parse(r.stdout) as unknown;
    return Array.isArray(v) ? (v as HaEvent[]) : [];
  } catch {
    return [];
  }
}

/** Empties demo_writes (on the primary, through the proxy). */
async function truncateWrites(cluster: DemoCluster): Promise<void> {
  const c = await cluster.superClient(await cluster.primary());
  try {
    await c.query('TRUNCATE demo_writes');
  } finally {
    await c.end();
  }
}

/** Ids present in demo_writes on the current primary. */
async function committedIds(cluster: DemoCluster): Promise<Set<number>> {
  const c = await cluster.superClient(await cluster.primary());
  try {
    const r = await c.query<{ id: string }>('SELECT id::text AS id FROM demo_writes');
    return new Set(r.rows.map((x) => Number(x.id)));
  } finally {
    await c.end();
  }
}

export async function underLoad(ctx: ScenarioContext, plan: UnderLoadPlan): Promise<UnderLoadResult> {
  const { progress } = ctx;
  const w = plan.workload;
  const other = plan.target;
  const cluster = w?.cluster ?? ctx.cluster;
  if (!w && !other) await truncateWrites(cluster);
  const startedAt = Date.now();
  const load = new Load({
    endpoint: other?.endpoint ?? cluster.endpoint(),
    ...(other ? { readWriteHosts: other.readWriteHosts } : {}),
    groups: w
      ? [{ kind: 'write', clients: w.writers }]
      : [
          { kind: 'write', clients: WRITERS },
          { kind: 'read', clients: READERS },
        ],
    keys: ctx.settings.keys,
    firstWriteId: ctx.nextWriteId(10_000_000),
    queryTimeoutMs: 30_000,
    ...(w ? { writeSql: w.writeSql, ...(w.classOf ? { classOf: w.classOf } : {}) } : {}),
  });
  await load.open();
  load.start();
  const t0 = Date.now();
  const timer = setInterval(() => {
    const l = load.live();
    const tl = l.seconds;
    progress.update(
      plan.progressBase + plan.progressSpan * Math.min(1, tl / plan.expectSeconds),
      `${plan.label}: ${int(l.writeOk)} writes, ${int(l.readOk)} reads, ${int(l.errors)} errors`,
    );
  }, 250);
  let markers: Marker[] = [];
  let r: LoadResult;
  try {
    await sleep(plan.before * 1000);
    markers = await plan.action(() => load.elapsed());
    await sleep(plan.after * 1000);
  } finally {
    clearInterval(timer);
    r = await load.stop();
  }
  const ids = other ?? w;
  const present = await (ids ? ids.committedIds() : committedIds(cluster));
  const lost = r.acknowledged.filter((id) => !present.has(id));
  const events = other ? [] : (await history(cluster)).filter((e) => Date.parse(e.at) >= startedAt - 1000);
  return {
    load: r,
    markers: [...markers, ...eventMarkers(events, t0)].sort((a, b) => a.t - b.t),
    lost,
    inDoubtCommitted: r.inDoubt.filter((id) => present.has(id)).length,
    rows: present.size,
    events,
  };
}

/** The timeline chart of a run under load. */
export function timelineChart(title: string, r: UnderLoadResult): TimelineChart {
  return {
    type: 'timeline',
    title,
    unit: 'operations/s',
    bucketSeconds: r.load.bucketSeconds,
    series: [
      { name: 'writes/s', values: ratesPerSecond(r.load.timeline, 'writeOk') },
      // A workload without readers draws no reads line.
      ...(r.load.read.ok + r.load.read.errors > 0
        ? [{ name: 'reads/s', values: ratesPerSecond(r.load.timeline, 'readOk') }]
        : []),
      { name: 'errors/s', values: ratesPerSecond(r.load.timeline, 'errors') },
    ],
    markers: r.markers,
  };
}

/** Seconds from the load's start of an HA event, given the wall-clock time the load started at. */
export function eventMarkers(events: readonly HaEvent[], loadStartedAt: number): Marker[] {
  return events.map((e) => ({
    t: (Date.parse(e.at) - loadStartedAt) / 1000,
    label: e.node ? `${e.event} (${e.node})` : e.event,
  }));
}
