/**
 * High-availability commands: `pgscale switchover`, `failover`, `history`, `pause-ha` and
 * `resume-ha`. On one host they ask the running controller over its HTTP API (the changing ones
 * with the token it keeps in <data_dir>/api-token, readable only by its owner). For a cluster of
 * several hosts (`ha.store: etcd`, run by `pgscale agent`; see storeMode) they work through the
 * store, from any machine that reaches etcd: the history
 * read from it, `paused` written to it, switchover and failover carried to the decider as
 * requests (src/ha/store-requests.ts).
 */
import { UsageError } from '../../errors.js';
import type { HaEvent } from '../../ha/ha-service.js';
import { openStore, storePrefix } from '../../ha/open-store.js';
import { CLAIM_KEY } from '../../ha/store-claim.js';
import { mergeStoredNodes, readStoredNodes } from '../../ha/store-nodes.js';
import { ClusterError, ErrorCodes } from '../../errors.js';
import { intOption, parse, renamedOption } from '../args.js';
import { openCluster, out } from '../context.js';
import type { Cluster } from '../../cluster/cluster.js';
import { table } from '../table.js';
import { controllerCall } from '../controller-api.js';
import { liveController } from '../../controller/controller-file.js';
import { HaHistory } from '../../ha/ha-history.js';
import { setPausedInStore, submitRequest } from '../../ha/store-requests.js';
import type { StateStore } from '../../ha/store.js';

/**
 * Whether the commands go through the state store rather than a controller's HTTP API: a cluster
 * of several hosts (its nodes on more than one host, its state in etcd: run by `pgscale agent`)
 * with no controller for it on this machine. A cluster on one host keeps its commands as they
 * were, etcd or not: `status` from its data directory, the others through its controller.
 */
export function storeMode(cluster: Cluster): boolean {
  return (
    cluster.config.ha.store === 'etcd' &&
    new Set(cluster.nodes().map((n) => n.host)).size > 1 &&
    liveController(cluster.dataDir) === null
  );
}

/**
 * Runs `fn` with the cluster's store open. The cluster must have claimed its prefix (its first
 * agent does): a `cluster.id` that names no cluster would otherwise have `pause-ha` write where
 * no decider looks, and `status` show an empty cluster.
 */
export async function withStore<T>(cluster: Cluster, fn: (store: StateStore) => Promise<T>): Promise<T> {
  const store = await openStore(cluster.loaded);
  try {
    if ((await store.get(CLAIM_KEY)) === null) {
      throw new ClusterError(
        ErrorCodes.USAGE,
        `no cluster has claimed ${storePrefix(cluster.loaded)} in etcd (${cluster.config.ha.etcd.endpoints.join(', ')}): has cluster "${cluster.config.cluster.name}" been started (its first agent, or \`pgscale up\`, claims it), and is cluster.id in ${cluster.loaded.file} the cluster's?`,
      );
    }
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * Takes in the nodes recorded in the store (add-replica --host, add-group --hosts) beside the
 * file's: the CLI's view of the running cluster (src/ha/store-nodes.ts).
 */
export async function takeInStoredNodes(cluster: Cluster, store: StateStore): Promise<void> {
  cluster.replaceConfig(mergeStoredNodes(cluster.loaded, await readStoredNodes(store)));
}

export const switchoverHelp = `Usage: pgscale switchover [-c FILE] [--group N] [--to NODE] [--json]

Planned change of primary: the proxy holds new transactions, running ones finish (bounded by
ha.switchover_timeout), the primary shuts down cleanly, NODE (default: the most advanced
standby) is promoted once it has received everything, the proxy resumes on it, and the former
primary follows it as a standby. Clients between transactions see no error.

With several hosts (nodes on several hosts, ha.store: etcd) the request goes through
etcd to the agent that is the decider, from any machine with FILE that reaches etcd (docs/ha.md).
`;

export const failoverHelp = `Usage: pgscale failover [-c FILE] [--group N] [--to NODE] [--json]

Immediate change of primary: the current primary (if it still runs) is fenced — killed and
kept from restarting as a primary — and NODE (default: the most advanced eligible standby) is
promoted. For a failed primary while automatic failover is paused, or to force a choice.
Prefer \`pgscale switchover\` for planned maintenance.

With several hosts (nodes on several hosts, ha.store: etcd) the request goes through
etcd to the agent that is the decider, from any machine with FILE that reaches etcd (docs/ha.md).
`;

export const historyHelp = `Usage: pgscale history [-c FILE] [--limit N] [--json]

HA events with their times: leader changes, failure detection, fencing, promotion, the proxy's
switch, rejoins, switchovers, refusals. Works whether or not the controller runs, and, with
several hosts (ha.store: etcd), from any machine with FILE that reaches etcd.
`;

export const pauseHelp = `Usage: pgscale pause-ha [-c FILE]

Pauses automatic failover (for maintenance): nothing is promoted, restarted, rewound or re-pointed
while paused, even if the primary fails. \`pgscale resume-ha\` ends it; \`pgscale failover\` and
\`pgscale switchover\` still work when paused. With several hosts (nodes on several hosts,
ha.store: etcd) it writes the \`paused\` key in etcd, which the decider reads at
every cycle.
`;

export const resumeHelp = `Usage: pgscale resume-ha [-c FILE]

Resumes automatic failover after \`pgscale pause-ha\`.
`;

function call(
  cluster: Cluster,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return controllerCall(
    cluster,
    method,
    path,
    body,
    'high availability (ha.enabled is false in the configuration, or it is an older version)',
  );
}

function errorText(r: { status: number; body: Record<string, unknown> }): string {
  return typeof r.body.error === 'string' ? r.body.error : `HTTP ${r.status}`;
}

function printEvents(events: HaEvent[]): void {
  out(
    table(
      ['TIME', 'GROUP', 'EVENT', 'NODE', 'EPOCH', 'DETAIL'],
      events.map((e) => [
        e.at,
        e.group < 0 ? '-' : e.group,
        e.event,
        e.node ?? null,
        e.epoch ?? null,
        e.detail ?? null,
      ]),
    ),
  );
}

async function change(kind: 'switchover' | 'failover', argv: string[]): Promise<number> {
  const { values } = parse(kind, argv, {
    group: { type: 'string' },
    shard: { type: 'string' },
    to: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) return (out(kind === 'switchover' ? switchoverHelp : failoverHelp), 0);
  const cluster = openCluster(values);
  if (storeMode(cluster)) await withStore(cluster, (store) => takeInStoredNodes(cluster, store));
  const group =
    intOption('group', renamedOption(values, 'group', 'shard'), 0, cluster.config.groups.length - 1) ?? 0;
  const to = typeof values.to === 'string' ? values.to : undefined;
  if (to !== undefined && !cluster.nodes().some((n) => n.name === to && n.group === group)) {
    throw new UsageError(`--to ${to}: no such node in group ${group} of ${cluster.loaded.file}`);
  }
  const r = storeMode(cluster)
    ? await throughStore(cluster, kind, group, to ?? null, values.json === true)
    : await call(cluster, 'POST', `/ha/${kind}`, { group, ...(to ? { to } : {}) });
  if (values.json) out(JSON.stringify(r.body, null, 2));
  if (r.status !== 200) {
    if (!values.json) out(`${kind} not done: ${errorText(r)}`);
    return 1;
  }
  if (!values.json) {
    printEvents((r.body.events as HaEvent[]) ?? []);
  }
  return 0;
}

/** A switchover or failover asked of the decider through the store, answered as the HTTP API does. */
async function throughStore(
  cluster: Cluster,
  kind: 'switchover' | 'failover',
  group: number,
  to: string | null,
  json: boolean,
): Promise<{ status: number; body: Record<string, unknown> }> {
  // A decider that just died is replaced within a TTL or so (its session must end first).
  const claimTimeoutMs = (cluster.config.ha.ttl * 2 + 5) * 1000;
  const r = await withStore(cluster, (store) =>
    submitRequest(
      store,
      { group, kind, to },
      {
        claimTimeoutMs,
        onClaimed: (host) => {
          if (!json) out(`${kind} of group ${group} taken by the decider (agent of ${host})`);
        },
      },
    ),
  );
  return r.ok
    ? { status: 200, body: { ok: true, events: r.events } }
    : { status: 409, body: { ok: false, error: r.reason } };
}

export function switchover(argv: string[]): Promise<number> {
  return change('switchover', argv);
}

export function failover(argv: string[]): Promise<number> {
  return change('failover', argv);
}

export async function history(argv: string[]): Promise<number> {
  const { values } = parse('history', argv, { limit: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) return (out(historyHelp), 0);
  const cluster = openCluster(values);
  const limit = intOption('limit', values.limit, 1, 100_000) ?? 500;
  let events: HaEvent[];
  if (storeMode(cluster)) {
    events = await withStore(cluster, (store) => new HaHistory(() => store).list(limit));
  } else if (liveController(cluster.dataDir)) {
    const r = await call(cluster, 'GET', `/ha/history?limit=${limit}`);
    events = (r.body.events as HaEvent[]) ?? [];
  } else if (cluster.config.ha.store === 'embedded' && !cluster.identity()) {
    events = [];
  } else {
    const store = await openStore(cluster.loaded);
    try {
      events = (await store.list('history/')).slice(-limit).map((kv) => JSON.parse(kv.value) as HaEvent);
    } finally {
      await store.close();
    }
  }
  if (values.json) out(JSON.stringify(events, null, 2));
  else if (events.length === 0) out('no HA events recorded yet');
  else printEvents(events);
  return 0;
}

async function setPaused(paused: boolean, argv: string[]): Promise<number> {
  const { values } = parse(paused ? 'pause-ha' : 'resume-ha', argv, {});
  if (values.help) return (out(paused ? pauseHelp : resumeHelp), 0);
  const cluster = openCluster(values);
  if (storeMode(cluster)) {
    await withStore(cluster, (store) => setPausedInStore(store, paused));
    out(
      paused
        ? 'automatic failover paused, in the state store: the decider sees it at its next cycle (`pgscale resume-ha` resumes it)'
        : 'automatic failover resumed, in the state store: the decider sees it at its next cycle',
    );
    return 0;
  }
  const r = await call(cluster, 'POST', paused ? '/ha/pause' : '/ha/resume');
  if (r.status !== 200) {
    out(`not done: ${errorText(r)}`);
    return 1;
  }
  out(paused ? 'automatic failover paused (`pgscale resume-ha` resumes it)' : 'automatic failover resumed');
  return 0;
}

export function pauseHa(argv: string[]): Promise<number> {
  return setPaused(true, argv);
}

export function resumeHa(argv: string[]): Promise<number> {
  return setPaused(false, argv);
}
