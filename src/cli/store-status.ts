/**
 * `pgscale status` for a cluster of several hosts, from any machine that reaches etcd: what the
 * state store says — the agents present, the decider, each group's leader and epoch, each node's
 * facts as its agent reported them — and, when this machine has the cluster's superuser password
 * (secrets.json in the data directory), each standby's streaming state and lag asked of its
 * group's primary over the network. storeStatus() is the pure part: the keys in, the report out.
 */
import type { NodeRef } from '../config/load.js';
import type { ConnTarget } from '../cluster/sql.js';
import { withClient } from '../cluster/sql.js';
import { AGENT_KEYS } from '../ha/agent-rpc.js';
import type { AgentInfo } from '../ha/agent-rpc.js';
import type { Leader } from '../ha/decide.js';
import type { EpochRecord } from '../ha/leader-lease.js';
import { HA_KEYS } from '../ha/leader-lease.js';
import type { NodeFacts } from '../ha/node-ops.js';
import type { KeyValue, StateStore } from '../ha/store.js';
import { PROXY_KEYS_PREFIX } from './proxy-peers.js';
import type { PeerInfo } from './proxy-peers.js';

export type StoreNodeState = 'running' | 'stopped' | 'fenced' | 'not provisioned' | 'no report';

export interface StoreNodeStatus {
  name: string;
  group: number;
  host: string;
  port: number;
  /** primary: the group's leader key names it; replica: its data directory is a standby's. */
  role: 'primary' | 'replica' | null;
  state: StoreNodeState;
  /** Whether its host's agent is present (agents/<host>). */
  agent: boolean;
  /** The node its primary_conninfo points to (standbys), as reported. */
  upstream: string | null;
  /** From its primary's pg_stat_replication when probed; null when not probed. */
  streaming: boolean | null;
  lagBytes: number | null;
  lagSeconds: number | null;
  /** As reported in members/<node>, or null when nothing is. */
  facts: NodeFacts | null;
}

export interface StoreStatus {
  cluster: string;
  store: string;
  paused: boolean;
  decider: string | null;
  agents: AgentInfo[];
  groups: { group: number; leader: string | null; epoch: number | null }[];
  nodes: StoreNodeStatus[];
  /**
   * The stateless proxies registered (`pgscale proxy --cluster`), by number; a worker of a proxy
   * with proxy.workers is registered on its own, with its number among the workers and its primary.
   */
  proxies: StoreProxy[];
  /** Whether the standbys' lag was asked of the primaries (null: why not). */
  probed: true | string;
}

export interface StoreProxy {
  proxy: number;
  host: string;
  port: number;
  pid: number;
  worker: number | null;
  primary: number | null;
}

/** The keys storeStatus() reads, as one snapshot. */
export interface StoreKeys {
  agents: KeyValue[];
  members: KeyValue[];
  decider: KeyValue | null;
  paused: KeyValue | null;
  leaders: (KeyValue | null)[];
  epochs: (KeyValue | null)[];
  proxies: KeyValue[];
}

export async function readStoreKeys(store: StateStore, groups: number): Promise<StoreKeys> {
  const range = Array.from({ length: groups }, (_, g) => g);
  const [agents, members, decider, paused, leaders, epochs, proxies] = await Promise.all([
    store.list(AGENT_KEYS.agents),
    store.list(AGENT_KEYS.members),
    store.get(AGENT_KEYS.decider),
    store.get(HA_KEYS.paused),
    Promise.all(range.map((g) => store.get(HA_KEYS.leader(g)))),
    Promise.all(range.map((g) => store.get(HA_KEYS.epoch(g)))),
    store.list(PROXY_KEYS_PREFIX),
  ]);
  return { agents, members, decider, paused, leaders, epochs, proxies };
}

function json<T>(kv: KeyValue | null | undefined): T | null {
  if (!kv) return null;
  try {
    return JSON.parse(kv.value) as T;
  } catch {
    return null;
  }
}

export function storeStatus(
  meta: { cluster: string; store: string },
  nodes: readonly NodeRef[],
  keys: StoreKeys,
): StoreStatus {
  const agents = keys.agents.map((kv) => json<AgentInfo>(kv)).filter((a): a is AgentInfo => a !== null);
  const present = new Set(keys.agents.map((kv) => kv.key.slice(AGENT_KEYS.agents.length)));
  const facts = new Map(
    keys.members.map((kv) => [kv.key.slice(AGENT_KEYS.members.length), json<NodeFacts>(kv)] as const),
  );
  const groups = keys.leaders.map((kv, group) => {
    const leader = json<Leader>(kv);
    const epoch = json<EpochRecord>(keys.epochs[group]);
    return { group, leader: leader?.node ?? null, epoch: leader?.epoch ?? epoch?.epoch ?? null };
  });
  const byAddress = (u: { host: string; port: number } | null) =>
    u ? (nodes.find((n) => n.host === u.host && n.port === u.port)?.name ?? `${u.host}:${u.port}`) : null;
  return {
    ...meta,
    paused: keys.paused?.value === 'true',
    decider: json<{ host: string }>(keys.decider)?.host ?? null,
    agents,
    groups,
    nodes: nodes.map((n) => {
      const f = facts.get(n.name) ?? null;
      const leader = groups[n.group]?.leader === n.name;
      const state: StoreNodeState =
        f === null
          ? 'no report'
          : !f.provisioned
            ? 'not provisioned'
            : f.needsRejoin
              ? 'fenced'
              : f.running
                ? 'running'
                : 'stopped';
      return {
        name: n.name,
        group: n.group,
        host: n.host,
        port: n.port,
        role: leader && f?.standbyDir !== true ? 'primary' : f?.provisioned ? 'replica' : null,
        state,
        agent: present.has(n.host),
        upstream: f?.standbyDir ? byAddress(f.upstream) : null,
        streaming: null,
        lagBytes: null,
        lagSeconds: null,
        facts: f,
      };
    }),
    proxies: keys.proxies
      .map((kv) => {
        const p = json<PeerInfo>(kv);
        const proxy = Number(kv.key.slice(kv.key.lastIndexOf('/') + 1));
        return p && Number.isInteger(proxy)
          ? {
              proxy,
              host: p.host,
              port: p.port,
              pid: p.pid,
              worker: p.worker ?? null,
              primary: p.primary ?? null,
            }
          : null;
      })
      .filter((p): p is StoreProxy => p !== null)
      .sort((a, b) => a.proxy - b.proxy),
    probed: 'not asked',
  };
}

/**
 * The proxies for a person: one entry per proxy process, its workers' numbers together, e.g.
 * `10.0.0.5:6432 (proxy 1, pid 812), 10.0.0.6:6432 (2 workers of pid 900: proxies 2, 3)`.
 */
export function proxiesLine(proxies: readonly StoreProxy[]): string {
  if (proxies.length === 0) return 'none';
  const byProcess = new Map<string, StoreProxy[]>();
  for (const p of proxies) {
    const k = `${p.host}:${p.port}/${p.primary ?? `own ${p.pid}`}`;
    byProcess.set(k, [...(byProcess.get(k) ?? []), p]);
  }
  return [...byProcess.values()]
    .map((ps) => {
      const p = ps[0]!;
      if (p.primary === null) return `${p.host}:${p.port} (proxy ${p.proxy}, pid ${p.pid})`;
      const workers = ps
        .sort((a, b) => (a.worker ?? 0) - (b.worker ?? 0))
        .map((w) => `worker ${w.worker} proxy ${w.proxy}`);
      return `${p.host}:${p.port} (${ps.length} worker${ps.length === 1 ? '' : 's'} of pid ${p.primary}: ${workers.join(', ')})`;
    })
    .join(', ');
}

interface ReplRow {
  application_name: string;
  state: string;
  lag_bytes: string | null;
  lag_s: number | null;
}

/**
 * Fills in each standby's streaming state and lag from its group's primary (one query each);
 * a primary that does not answer leaves its standbys' lag unknown and is said in `errors`.
 */
export async function probeLag(
  s: StoreStatus,
  nodes: readonly NodeRef[],
  target: (n: NodeRef) => ConnTarget,
): Promise<string[]> {
  const errors: string[] = [];
  await Promise.all(
    s.groups.map(async ({ group, leader }) => {
      const p = nodes.find((n) => n.name === leader);
      if (!p) return;
      try {
        const rows = await withClient(
          target(p),
          async (c) =>
            (
              await c.query<ReplRow>(
                `SELECT application_name, state,
                        pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text AS lag_bytes,
                        extract(epoch FROM replay_lag)::float8 AS lag_s
                   FROM pg_stat_replication`,
              )
            ).rows,
          3000,
        );
        for (const n of s.nodes) {
          if (n.group !== group || n.name === leader) continue;
          const r = rows.find((x) => x.application_name === n.name);
          n.streaming = r?.state === 'streaming';
          n.lagBytes = r?.lag_bytes != null ? Number(r.lag_bytes) : null;
          n.lagSeconds = r ? (r.lag_s ?? 0) : null;
        }
      } catch (e) {
        errors.push(`${p.name} (primary of group ${group}) does not answer: ${(e as Error).message}`);
      }
    }),
  );
  s.probed = true;
  return errors;
}
