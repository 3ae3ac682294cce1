/**
 * What the dashboard shows, built in one place from what the controller already serves: the
 * node status (GET /status), the services (GET /services: the proxy's pools), high availability
 * (GET /ha, GET /ha/history) and sharding (GET /sharding/map, GET /sharding/moves). A pure
 * function of those answers, so GET /dashboard/state and the events pushed to the page are the
 * same object. Every field is a name, a number or a state; no connection string or secret.
 */
import type { NodeStatus } from '../cluster/status.js';
import type { ServiceReport } from './http-api.js';

export interface DashboardInputs {
  cluster: string;
  controller: { state: string; pid: number; started_at: string | null };
  nodes: NodeStatus[];
  services: ServiceReport[];
  /** The bodies of GET /ha, /ha/history, /sharding/map, /sharding/moves; null when not served. */
  ha: unknown;
  history: unknown;
  map: unknown;
  moves: unknown;
  /** Proxy clients by state (pgscale_proxy_clients), null without a proxy. */
  clients: Record<string, number> | null;
}

export interface DashboardNode {
  name: string;
  role: string | null;
  state: string;
  streaming: boolean;
  host: string;
  port: number;
  timeline: number | null;
  lsn: string | null;
  lag_bytes: number | null;
  lag_seconds: number | null;
  sync_state: string | null;
  pending_restart: boolean;
  error: string | null;
}

export interface DashboardMove {
  shard_id: number;
  table: string;
  from: string;
  to: string;
  state: string;
  step: string | null;
  copied_bytes: number | null;
  source_bytes: number | null;
  colocation: number;
  shard: number;
}

export interface DashboardState {
  cluster: string;
  controller: { state: string; pid: number; started_at: string | null };
  /** The page offers no action. */
  read_only: true;
  groups: { group: number; leader: string | null; epoch: number | null; nodes: DashboardNode[] }[];
  ha: { enabled: boolean; paused: boolean; store_reachable: boolean } | null;
  shards: {
    catalog_version: number;
    groups: string[];
    shards_per_group: Record<string, number>;
    colocations: { id: number; kind: string; shard_count: number; tables: string[]; placement: string[] }[];
  } | null;
  moves: { id: string; kind: string; state: string; started_at: string; moves: DashboardMove[] } | null;
  pools: {
    listening: boolean;
    listen: string | null;
    pool_mode: string | null;
    clients: Record<string, number>;
    pools: {
      database: string;
      user: string;
      server: string;
      active: number;
      idle: number;
      waiting: number;
    }[];
  } | null;
  /** Newest first. */
  history: { at: string; group: number; event: string; node: string | null; detail: string | null }[];
  services: { name: string; state: string; error: string | null }[];
}

export const HISTORY_SHOWN = 30;

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | null =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : null;
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

export function dashboardState(i: DashboardInputs): DashboardState {
  const ha = obj(i.ha);
  const haGroups = arr(ha?.groups).map(obj);
  const groupCount = Math.max(haGroups.length, ...i.nodes.map((n) => n.group + 1), 0);
  const groups = Array.from({ length: groupCount }, (_, g) => ({
    group: g,
    leader:
      str(haGroups[g]?.leader) ?? i.nodes.find((n) => n.group === g && n.role === 'primary')?.name ?? null,
    epoch: num(haGroups[g]?.epoch),
    nodes: i.nodes.filter((n) => n.group === g).map(dashboardNode),
  }));
  const proxy = obj(i.services.find((s) => s.name === 'proxy')?.status);
  return {
    cluster: i.cluster,
    controller: i.controller,
    read_only: true,
    groups,
    ha: ha
      ? { enabled: true, paused: ha.paused === true, store_reachable: ha.store_reachable !== false }
      : null,
    shards: shardsOf(obj(i.map)),
    moves: movesOf(obj(obj(i.moves)?.current)),
    pools:
      proxy && proxy.running !== false
        ? {
            listening: proxy.listening === true,
            listen: str(proxy.listen),
            pool_mode: str(proxy.pool_mode),
            clients: i.clients ?? {},
            pools: arr(proxy.pools).map((p) => {
              const o = obj(p) ?? {};
              return {
                database: str(o.database) ?? '?',
                user: str(o.user) ?? '?',
                server: str(o.server) ?? '?',
                active: num(o.active) ?? 0,
                idle: num(o.idle) ?? 0,
                waiting: num(o.waiting) ?? 0,
              };
            }),
          }
        : null,
    history: arr(obj(i.history)?.events)
      .slice(-HISTORY_SHOWN)
      .reverse()
      .map((e) => {
        const o = obj(e) ?? {};
        return {
          at: str(o.at) ?? '',
          group: num(o.group) ?? num(o.shard) ?? -1,
          event: str(o.event) ?? '?',
          node: str(o.node),
          detail: str(o.detail),
        };
      }),
    services: i.services.map((s) => ({ name: s.name, state: s.state, error: s.error ?? null })),
  };
}

function dashboardNode(n: NodeStatus): DashboardNode {
  // `pending_restart` (or pendingRestart) appears in the node status once pgscale reports it.
  const extra = n as unknown as Obj;
  const pending = extra.pending_restart ?? extra.pendingRestart;
  return {
    name: n.name,
    role: n.role,
    state: n.state,
    streaming: n.streaming,
    host: n.host,
    port: n.port,
    timeline: n.timeline,
    lsn: n.lsn,
    lag_bytes: n.lagBytes,
    lag_seconds: n.lagSeconds,
    sync_state: n.syncState,
    pending_restart: Array.isArray(pending) ? pending.length > 0 : pending === true,
    error: n.error,
  };
}

function shardsOf(m: Obj | null): DashboardState['shards'] {
  if (!m || num(m.catalog_version) === null) return null;
  return {
    catalog_version: num(m.catalog_version)!,
    groups: arr(m.groups).map(String),
    shards_per_group: Object.fromEntries(
      Object.entries(obj(m.shards_per_group) ?? {}).map(([g, n]) => [g, num(n) ?? 0]),
    ),
    colocations: arr(m.colocations).map((c) => {
      const o = obj(c) ?? {};
      return {
        id: num(o.id) ?? 0,
        kind: str(o.kind) ?? 'distributed',
        shard_count: num(o.shard_count) ?? 0,
        tables: arr(o.tables).map((t) => str(obj(t)?.name) ?? '?'),
        placement: arr(o.placement).map(String),
      };
    }),
  };
}

function movesOf(job: Obj | null): DashboardState['moves'] {
  if (!job) return null;
  return {
    id: str(job.id) ?? '?',
    kind: str(job.kind) ?? '?',
    state: str(job.state) ?? '?',
    started_at: str(job.started_at) ?? '',
    moves: arr(job.moves).map((m) => {
      const o = obj(m) ?? {};
      return {
        shard_id: num(o.shard_id) ?? 0,
        table: str(o.table) ?? '?',
        from: str(o.from) ?? '?',
        to: str(o.to) ?? '?',
        state: str(o.state) ?? '?',
        step: str(o.step),
        copied_bytes: num(o.copied_bytes),
        source_bytes: num(o.source_bytes),
        colocation: num(o.colocation) ?? -1,
        shard: num(o.shard) ?? -1,
      };
    }),
  };
}
