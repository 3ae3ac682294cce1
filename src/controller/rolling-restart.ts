/**
 * Restarts and rebuilds of nodes, asked for by the operator (`pgscale restart`, `reinit`).
 *
 * A rolling restart of a group keeps writes going: the standbys first, one at a time, each
 * waited for until it streams again; then, when the primary is to be restarted too, a switchover
 * to a restarted standby (high availability's own, promotion.ts: writes pause only for it), in
 * which the former primary is stopped cleanly and started again as a standby — its restart. With
 * no standby to hand over to (or without high availability) the primary restarts in place and
 * writes stop meanwhile: the result says so. High availability counts a node being restarted or
 * rebuilt as busy and leaves it alone meanwhile.
 */
import type { Cluster } from '../cluster/cluster.js';
import type { NodeStatus } from '../cluster/status.js';
import type { NodeRef } from '../config/load.js';
import { ClusterError, ErrorCodes, errorMessage } from '../errors.js';
import type { HaService } from '../ha/ha-service.js';
import type { Logger } from '../obs/logger.js';

export interface RestartContext {
  cluster: Cluster;
  log: Logger;
  ha: HaService | null;
}

export interface RestartResult {
  /** What was done, in order, for people. */
  steps: string[];
  restarted: string[];
  warnings: string[];
}

/** How long a restarted standby may take to stream again. */
const STREAM_TIMEOUT_MS = 120_000;

async function groupStatus(cluster: Cluster, group: number): Promise<NodeStatus[]> {
  return (await cluster.status()).filter((s) => s.group === group);
}

function ref(cluster: Cluster, name: string): NodeRef {
  const n = cluster.nodes().find((x) => x.name === name);
  if (!n)
    throw new ClusterError(ErrorCodes.NODE_NOT_FOUND, `no node named "${name}" in ${cluster.loaded.file}`);
  return n;
}

/** Waits until `name` runs as a streaming standby (or, `primary`, accepts writes). */
async function waitReady(cluster: Cluster, name: string, primary = false): Promise<void> {
  const deadline = Date.now() + STREAM_TIMEOUT_MS;
  let last: NodeStatus | undefined;
  while (Date.now() < deadline) {
    last = (await cluster.status()).find((s) => s.name === name);
    if (last?.state === 'running' && (primary ? last.role === 'primary' : last.streaming)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new ClusterError(
    ErrorCodes.TIMEOUT,
    `${name} is not ${primary ? 'running as the primary' : 'streaming'} ${STREAM_TIMEOUT_MS / 1000} s after its restart (state ${last?.state ?? 'unknown'}${last?.error ? `: ${last.error}` : ''}); see ${cluster.paths(name).log}`,
  );
}

async function record(ctx: RestartContext, group: number, event: string, node: string, detail?: string) {
  ctx.log.info({ group, node, event, detail }, `${event} ${node}${detail ? `: ${detail}` : ''}`);
  await ctx.ha
    ?.record({ group, event, node, ...(detail ? { detail } : {}) })
    .catch((e: unknown) => ctx.log.warn({ err: e }, `history not written: ${errorMessage(e)}`));
}

/** Runs fn with the node marked busy for high availability (when it runs). */
function asBusy<T>(ctx: RestartContext, node: string, fn: () => Promise<T>): Promise<T> {
  return ctx.ha ? ctx.ha.whileBusy(node, fn) : fn();
}

async function restartStandby(ctx: RestartContext, s: NodeStatus, primary: NodeRef, why: string) {
  const { cluster } = ctx;
  const n = ref(cluster, s.name);
  await asBusy(ctx, n.name, async () => {
    await cluster.stopNode(n, 'fast');
    await cluster.startStandby(n, primary);
    await waitReady(cluster, n.name);
  });
  await record(ctx, n.group, 'restarted', n.name, why);
}

export interface RestartRequest {
  node?: string | undefined;
  group?: number | undefined;
  pending?: boolean | undefined;
}

/** `pgscale restart [NODE | --pending] [--group N]`: see the module comment. */
export async function rollingRestart(ctx: RestartContext, req: RestartRequest): Promise<RestartResult> {
  const { cluster } = ctx;
  if (req.node !== undefined && req.pending)
    throw new ClusterError(ErrorCodes.USAGE, 'name a node or --pending, not both');
  const groupCount = cluster.config.groups.length;
  if (req.group !== undefined && req.group >= groupCount)
    throw new ClusterError(
      ErrorCodes.USAGE,
      `there is no group ${req.group} (the cluster has ${groupCount})`,
    );
  const only = req.node !== undefined ? ref(cluster, req.node) : null;
  if (only && req.group !== undefined && only.group !== req.group)
    throw new ClusterError(
      ErrorCodes.USAGE,
      `${only.name} is in group ${only.group}, not group ${req.group}`,
    );
  const groups = only ? [only.group] : req.group !== undefined ? [req.group] : [...Array(groupCount).keys()];
  const res: RestartResult = { steps: [], restarted: [], warnings: [] };
  for (const g of groups) await restartGroup(ctx, g, req, only, res);
  if (res.restarted.length === 0)
    res.steps.push(req.pending ? 'no node has a setting pending restart' : 'nothing to restart');
  return res;
}

async function restartGroup(
  ctx: RestartContext,
  group: number,
  req: RestartRequest,
  only: NodeRef | null,
  res: RestartResult,
): Promise<void> {
  const { cluster } = ctx;
  const status = await groupStatus(cluster, group);
  const primaryStatus = status.find((s) => s.role === 'primary' && s.state === 'running');
  if (!primaryStatus) throw new ClusterError(ErrorCodes.NO_PRIMARY, `group ${group} has no running primary`);
  const wanted = (s: NodeStatus) =>
    only ? s.name === only.name : req.pending ? s.pendingRestart.length > 0 : true;
  if (only) {
    const s = status.find((x) => x.name === only.name);
    if (s?.state !== 'running')
      throw new ClusterError(
        ErrorCodes.USAGE,
        `${only.name} is not running (${s?.state ?? 'unknown'}); nothing to restart`,
      );
  }
  const why = (s: NodeStatus) =>
    s.pendingRestart.length ? `pending: ${s.pendingRestart.join(', ')}` : 'requested';
  let primary = ref(cluster, primaryStatus.name);
  for (const s of status.filter((x) => x.state !== 'running' && wanted(x)))
    res.warnings.push(`${s.name} is ${s.state}: not restarted (it takes the settings when it starts)`);
  // The standbys first, one at a time: the group keeps its other standbys meanwhile.
  for (const s of status.filter((x) => x.name !== primary.name && x.state === 'running' && wanted(x))) {
    await restartStandby(ctx, s, primary, why(s));
    res.steps.push(`restarted standby ${s.name} (${why(s)}); it streams again`);
    res.restarted.push(s.name);
  }
  if (!wanted(primaryStatus)) return;
  const fresh = await groupStatus(cluster, group);
  const standbys = fresh.filter((s) => s.name !== primary.name && s.streaming);
  // A standby just restarted is the best target: it already runs with the new settings.
  const target = standbys.find((s) => res.restarted.includes(s.name)) ?? standbys[0];
  if (ctx.ha && target) {
    const old = primary;
    const r = await ctx.ha.request(group, { kind: 'switchover', to: target.name });
    if (!r.ok)
      throw new ClusterError(
        ErrorCodes.HA_REFUSED,
        `switchover of group ${group} to ${target.name}: ${r.reason}`,
      );
    res.steps.push(`switched over group ${group} from ${old.name} to ${target.name}`);
    // The switchover stopped the former primary and started it as a standby: its restart.
    await waitReady(cluster, old.name);
    const after = (await groupStatus(cluster, group)).find((s) => s.name === old.name)!;
    primary = ref(cluster, target.name);
    if (after.pendingRestart.length > 0) await restartStandby(ctx, after, primary, why(after));
    await record(
      ctx,
      group,
      'restarted',
      old.name,
      `${why(primaryStatus)}; as a standby of ${target.name} after a switchover`,
    );
    res.steps.push(`${old.name} restarted as a standby of ${target.name}; it streams again`);
    res.restarted.push(old.name);
    return;
  }
  const warning = `group ${group} has ${ctx.ha ? 'no streaming standby to switch over to' : 'no high availability (ha.enabled is false) to switch over with'}: its primary ${primary.name} restarts in place and writes stop until it is back`;
  res.warnings.push(warning);
  ctx.log.warn({ group, node: primary.name }, warning);
  const p = primary;
  const t0 = Date.now();
  await asBusy(ctx, p.name, async () => {
    await cluster.stopNode(p, 'fast');
    await cluster.startPrimary(p);
    await waitReady(cluster, p.name, true);
  });
  await record(
    ctx,
    group,
    'restarted',
    p.name,
    `${why(primaryStatus)}; in place (writes stopped ${Date.now() - t0} ms)`,
  );
  res.steps.push(
    `restarted primary ${p.name} in place (${why(primaryStatus)}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  res.restarted.push(p.name);
}

/** `pgscale reinit NODE`: rebuilds a standby from its group's primary (refused on the primary). */
export async function reinitNode(ctx: RestartContext, name: string): Promise<RestartResult> {
  const { cluster } = ctx;
  const n = ref(cluster, name);
  const status = await groupStatus(cluster, n.group);
  const primaryStatus = status.find((s) => s.role === 'primary' && s.state === 'running');
  if (primaryStatus?.name === n.name || cluster.primaryOf(n.group)?.name === n.name) {
    throw new ClusterError(
      ErrorCodes.USAGE,
      `${n.name} is the primary of group ${n.group}: reinit rebuilds a standby from the primary; switch over first (\`pgscale switchover --group ${n.group}\`), then reinit ${n.name}`,
    );
  }
  if (!primaryStatus)
    throw new ClusterError(ErrorCodes.NO_PRIMARY, `group ${n.group} has no running primary to clone from`);
  const primary = ref(cluster, primaryStatus.name);
  const t0 = Date.now();
  await asBusy(ctx, n.name, async () => {
    await cluster.reinit(n, primary);
    await waitReady(cluster, n.name);
  });
  const detail = `cloned from ${primary.name} in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
  await record(ctx, n.group, 'reinit', n.name, detail);
  return { steps: [`rebuilt ${n.name}: ${detail}; it streams again`], restarted: [n.name], warnings: [] };
}
