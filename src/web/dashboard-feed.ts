/**
 * The dashboard's live feed: samples the proxy's counters once a second into a ring (five
 * minutes), and while at least one page listens, rebuilds the dashboard state every
 * `refreshMs` and pushes it as a Server-Sent Event when it changed, so a switchover or a shard
 * move shows within a second. A listener is dropped the moment its connection closes (and all of
 * them on stop()), so a page that goes away leaves nothing behind; with no listener only the
 * cheap sampling runs. Events: `state` (the whole DashboardState; the first one also carries
 * `samples`) and `sample` (one new Sample).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NodeStatus } from '../cluster/status.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { redactSecrets } from '../obs/logger.js';
import type { Registry } from '../obs/metrics.js';
import { SampleRing } from './dashboard-samples.js';
import type { ProxyTotals, Sample } from './dashboard-samples.js';
import { dashboardState } from './dashboard-state.js';
import type { DashboardState } from './dashboard-state.js';
import type { ServiceReport } from './http-api.js';
import type { ControllerInfo } from './status-report.js';

export interface DashboardSources {
  cluster(): string;
  state(): string;
  controller(): ControllerInfo | null;
  nodes(): Promise<NodeStatus[]>;
  services(): ServiceReport[];
  /** The body of a GET endpoint of a service (/ha, /sharding/map …) when it answers 200, else null. */
  get(path: string, query?: string): Promise<unknown>;
  registry: Registry;
  logger: Logger;
}

export interface FeedOptions {
  sampleMs?: number;
  refreshMs?: number;
  /** A comment line this often keeps proxies from closing an idle stream and finds dead peers. */
  pingMs?: number;
}

export type DashboardAnswer = DashboardState & { samples: Sample[] };

export class DashboardFeed {
  readonly samples = new SampleRing(300);
  private readonly listeners = new Set<ServerResponse>();
  private readonly timers: NodeJS.Timeout[] = [];
  private lastJson = '';
  private building: Promise<DashboardState> | null = null;
  private lastError: string | null = null;

  constructor(
    private readonly src: DashboardSources,
    private readonly opts: FeedOptions = {},
  ) {}

  /** Pages listening now. */
  get listenerCount(): number {
    return this.listeners.size;
  }

  start(): void {
    if (this.timers.length > 0) return;
    const every = (ms: number, fn: () => Promise<void> | void) => {
      const t = setInterval(() => void fn(), ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.opts.sampleMs ?? 1000, () => this.sample());
    every(this.opts.refreshMs ?? 500, async () => {
      if (this.listeners.size > 0) await this.refresh();
    });
    every(this.opts.pingMs ?? 15_000, () => this.broadcast(': ping\n\n'));
  }

  /** Stops the timers and ends every stream. */
  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    for (const res of this.listeners) res.end();
    this.listeners.clear();
  }

  /** GET /dashboard/state: the state now, with the samples kept. */
  async answer(): Promise<DashboardAnswer> {
    return { ...(await this.refresh()), samples: this.samples.list() };
  }

  /** GET /dashboard/events: an SSE stream, first the whole state, then changes. */
  async subscribe(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 1000\n\n');
    const drop = () => this.listeners.delete(res);
    req.on('close', drop);
    res.on('close', drop);
    res.on('error', drop);
    const first = await this.answer();
    if (res.destroyed || res.writableEnded) return;
    this.listeners.add(res);
    res.write(event('state', JSON.stringify(first)));
  }

  /** Builds the state (one build at a time) and pushes it to the listeners when it changed. */
  private refresh(): Promise<DashboardState> {
    this.building ??= this.build().finally(() => (this.building = null));
    return this.building;
  }

  private async build(): Promise<DashboardState> {
    const s = this.src;
    let nodes: NodeStatus[] = [];
    try {
      nodes = await s.nodes();
      this.lastError = null;
    } catch (e) {
      const msg = errorMessage(e);
      if (msg !== this.lastError) s.logger.warn({ err: e }, `dashboard: cannot read the node status: ${msg}`);
      this.lastError = msg;
    }
    const [ha, history, map, moves, clients] = await Promise.all([
      s.get('/ha'),
      s.get('/ha/history', 'limit=30'),
      s.get('/sharding/map'),
      s.get('/sharding/moves'),
      clientsByState(s.registry),
    ]);
    const info = s.controller();
    const state = redactSecrets(
      dashboardState({
        cluster: s.cluster(),
        controller: { state: s.state(), pid: process.pid, started_at: info?.started_at ?? null },
        nodes,
        services: s.services(),
        ha,
        history,
        map,
        moves,
        clients,
      }),
    );
    const json = JSON.stringify(state);
    if (json !== this.lastJson) {
      this.lastJson = json;
      this.broadcast(event('state', json));
    }
    return state;
  }

  private async sample(): Promise<void> {
    try {
      const totals = await proxyTotals(this.src.registry);
      if (!totals) return;
      const s = this.samples.add(Date.now(), totals);
      if (s) this.broadcast(event('sample', JSON.stringify(s)));
    } catch (e) {
      this.src.logger.warn({ err: e }, `dashboard: cannot read the proxy's counters: ${errorMessage(e)}`);
    }
  }

  private broadcast(text: string): void {
    for (const res of this.listeners) {
      if (res.destroyed || res.writableEnded) this.listeners.delete(res);
      else res.write(text);
    }
  }
}

function event(name: string, data: string): string {
  return `event: ${name}\ndata: ${data}\n\n`;
}

/** Sum over the labels of one metric of the registry; null when it is not registered. */
async function total(registry: Registry, name: string): Promise<number | null> {
  const m = registry.getSingleMetric(name);
  if (!m) return null;
  const v = await m.get();
  return v.values.reduce((a, x) => a + x.value, 0);
}

/** The proxy's running totals, from its metrics (null when no proxy runs here). */
async function proxyTotals(registry: Registry): Promise<ProxyTotals | null> {
  const [xacts, queries, querySeconds] = await Promise.all([
    total(registry, 'pgscale_proxy_transactions_total'),
    total(registry, 'pgscale_proxy_queries_total'),
    total(registry, 'pgscale_proxy_query_duration_seconds_total'),
  ]);
  if (xacts === null || queries === null || querySeconds === null) return null;
  return { xacts, queries, querySeconds };
}

async function clientsByState(registry: Registry): Promise<Record<string, number> | null> {
  const m = registry.getSingleMetric('pgscale_proxy_clients');
  if (!m) return null;
  const out: Record<string, number> = {};
  for (const v of (await m.get()).values) out[String(v.labels.state ?? '?')] = v.value;
  return out;
}
