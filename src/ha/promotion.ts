/**
 * The two ways a standby becomes a group's primary, each a fixed sequence whose order is its
 * safety: failover (the primary is gone: hold the proxy, fence the old primary, pick the freshest
 * candidate, win the leader key, promote) and switchover (the primary is fine: checkpoint, hold,
 * wait for open transactions, stop it cleanly, check the target has all its WAL, win the leader
 * key, promote, let the old primary follow). Both end in afterPromotion(): replication slots and
 * synchronous names on the new primary, the topology published, the other standbys re-pointed.
 * They run inside the HA loop (one cycle) through the narrow context below.
 */
import { performance } from 'node:perf_hooks';
import type { Cluster } from '../cluster/cluster.js';
import { slotName } from '../cluster/conf.js';
import type { NodeRef } from '../config/load.js';
import type { HaConfig } from '../config/schema.js';
import { ErrorCodes, errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import type { GroupSnapshot } from './decide.js';
import { pickCandidate } from './decide.js';
import type { HaEvent, RequestOutcome } from './ha-routes.js';
import type { LeaderLease } from './leader-lease.js';
import type { NodeOps } from './node-ops.js';
import type { MemberWatch, Probes } from './member-watch.js';
import type { ProbeResult } from './probe.js';
import type { GroupState } from './group-state.js';
import { HaError, ms, sleep, wonLeadership } from './group-state.js';
import type { TopologyPublisher } from './topology-publisher.js';

/** What a promotion needs of the HA service. */
export interface PromotionContext {
  readonly cluster: Cluster;
  readonly ops: NodeOps;
  readonly cfg: HaConfig;
  readonly log: Logger;
  readonly members: MemberWatch;
  readonly leases: LeaderLease;
  readonly publisher: TopologyPublisher;
  group(group: number): GroupState;
  node(name: string): NodeRef;
  /** The group's snapshot from these probes (for a fresh pick of the candidate). */
  snapshot(group: number, probes: Probes): GroupSnapshot;
  /** The node a queued request asked for, if any. */
  requestedTarget(group: number): string | null;
  finishRequest(group: number, r: RequestOutcome): void;
  record(e: Omit<HaEvent, 'at'>): Promise<HaEvent>;
}

export async function failover(
  ctx: PromotionContext,
  group: number,
  snap: GroupSnapshot,
  from: string | null,
  wanted: string,
  reason: string,
): Promise<void> {
  const st = ctx.group(group);
  const t0 = performance.now();
  const events: HaEvent[] = [];
  const note = async (e: Omit<HaEvent, 'at'>) => events.push(await ctx.record(e));
  await note({ group, event: 'failover_detected', ...(from ? { node: from } : {}), detail: reason });
  ctx.publisher.hold(group);
  if (from) {
    const killed = await ctx.ops.fence(ctx.node(from));
    await note({ group, event: 'fenced', node: from, detail: `${killed} processes killed (${ms(t0)} ms)` });
  }
  // Fresh positions now that the old primary cannot send anything more.
  const probes = new Map<string, ProbeResult | null>();
  for (const m of snap.members) {
    if (m.name === from || !m.running) probes.set(m.name, null);
    else probes.set(m.name, await ctx.members.prober(m.name).probe());
  }
  const fresh = ctx.snapshot(group, probes);
  const pick = pickCandidate(fresh, from, ctx.requestedTarget(group));
  if ('refuse' in pick) {
    await note({ group, event: 'failover_refused', detail: pick.refuse });
    ctx.finishRequest(group, { ok: false, reason: pick.refuse });
    throw new HaError(ErrorCodes.HA_REFUSED, `failover of group ${group} refused: ${pick.refuse}`);
  }
  const to = pick.node;
  if (to !== wanted) ctx.log.info({ group }, `fresher positions favour ${to} over ${wanted}`);
  // The leader key first: nothing is promoted unless this controller won it.
  const leader = { node: to, epoch: st.lastEpoch + 1 };
  if (!(await ctx.leases.take(group, leader, st.leaderKv?.revision ?? 0))) {
    throw new HaError(
      ErrorCodes.HA_REFUSED,
      `group ${group}: the leader key changed under us; not promoting`,
    );
  }
  wonLeadership(st, leader);
  const newPrimary = ctx.node(to);
  await promote(ctx, newPrimary);
  st.failovers++;
  st.lastFailoverAt = Date.now();
  await note({
    group,
    event: 'promoted',
    node: to,
    epoch: leader.epoch,
    detail: `${ms(t0)} ms after detection`,
  });
  await afterPromotion(ctx, group, newPrimary, from, note, t0);
  ctx.finishRequest(group, { ok: true, events });
}

export async function switchover(
  ctx: PromotionContext,
  group: number,
  from: string,
  to: string,
): Promise<void> {
  const st = ctx.group(group);
  const events: HaEvent[] = [];
  const note = async (e: Omit<HaEvent, 'at'>) => events.push(await ctx.record(e));
  const old = ctx.node(from);
  const target = ctx.node(to);
  const prober = ctx.members.prober(from);
  await note({ group, event: 'switchover_started', node: from, detail: `to ${to}` });
  // A checkpoint before holding anything keeps the shutdown checkpoint (inside the pause) short.
  await prober.query('CHECKPOINT').catch(() => undefined);
  const t0 = performance.now();
  ctx.publisher.hold(group);
  const deadline = t0 + ctx.cfg.switchover_timeout * 1000;
  let busy = 0;
  // Three quiet samples in a row: a statement a client sent just before the hold may still be
  // on its way to the server when one sample looks.
  let quiet = 0;
  for (;;) {
    const rows = await prober
      .query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
            AND xact_start IS NOT NULL AND application_name <> 'pgscale ha'`,
      )
      .catch(() => [{ n: '0' }]);
    busy = Number(rows[0]?.n ?? 0);
    quiet = busy === 0 ? quiet + 1 : 0;
    if (quiet >= 3 || performance.now() > deadline) break;
    await sleep(5);
  }
  const lastLsn = (await prober.probe()).currentLsn;
  await ctx.ops.stopNode(old, 'fast');
  await note({
    group,
    event: 'demoted',
    node: from,
    detail: `stopped after ${ms(t0)} ms${busy ? ` (${busy} transactions still open were ended)` : ''}`,
  });
  // The target must have received everything the old primary wrote (its shutdown checkpoint).
  const caughtUp = async () => {
    const p = await ctx.members.prober(to).probe();
    return p.ok && lastLsn !== null && p.receiveLsn !== null && p.receiveLsn > lastLsn;
  };
  let ok = await caughtUp();
  for (let i = 0; !ok && i < 100; i++) {
    await sleep(5);
    ok = await caughtUp();
  }
  if (!ok) {
    await ctx.ops.startPrimary(old);
    ctx.publisher.publishNow(group, old);
    const reason = `${to} did not receive the old primary's last WAL; ${from} restarted as the primary`;
    await note({ group, event: 'switchover_aborted', node: from, detail: reason });
    ctx.finishRequest(group, { ok: false, reason });
    return;
  }
  const leader = { node: to, epoch: st.lastEpoch + 1 };
  if (!(await ctx.leases.take(group, leader, st.leaderKv?.revision ?? 0))) {
    throw new HaError(ErrorCodes.HA_REFUSED, 'the leader key changed during the switchover');
  }
  wonLeadership(st, leader);
  await promote(ctx, target);
  await note({
    group,
    event: 'promoted',
    node: to,
    epoch: leader.epoch,
    detail: `${ms(t0)} ms after the hold`,
  });
  await afterPromotion(ctx, group, target, from, note, t0);
  const pause = ms(t0);
  st.switchovers++;
  // The old primary shut down cleanly and the target has all of its WAL: it follows as is.
  await ctx.ops.startStandby(old, target);
  await note({
    group,
    event: 'switchover_done',
    node: to,
    epoch: leader.epoch,
    detail: `new transactions held for ${pause} ms; ${from} follows ${to}`,
  });
  ctx.finishRequest(group, { ok: true, events });
}

/** New primary: slots and synchronous names for its standbys, topology, standbys re-pointed. */
async function afterPromotion(
  ctx: PromotionContext,
  group: number,
  primary: NodeRef,
  former: string | null,
  note: (e: Omit<HaEvent, 'at'>) => Promise<unknown>,
  t0: number,
): Promise<void> {
  const others = ctx.cluster
    .nodes()
    .filter((n) => n.group === group && n.name !== primary.name && (ctx.ops.facts(n)?.provisioned ?? true));
  // Over the probe connection (already authenticated): every millisecond here is one without
  // writes. Synchronous names are in place before the proxy sends the first write.
  const prober = ctx.members.prober(primary.name);
  for (const n of others) {
    await prober.query(
      `SELECT pg_create_physical_replication_slot($1, true)
        WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
      [slotName(n.name)],
    );
  }
  await ctx.ops.writePrimaryConf(primary);
  await prober.query('SELECT pg_reload_conf()');
  // Until the next probe, what we know: it is the primary now.
  ctx.members.notePromoted(primary.name);
  ctx.publisher.publishNow(group, primary);
  await note({
    group,
    event: 'proxy_switched',
    node: primary.name,
    detail: `${ms(t0)} ms after detection`,
  });
  for (const n of others) {
    if (n.name === former) continue;
    if (!ctx.ops.facts(n)?.running) continue;
    await ctx.ops
      .repoint(n, primary)
      .catch((e: unknown) =>
        ctx.log.warn({ group, node: n.name }, `re-pointing ${n.name} failed (retried): ${errorMessage(e)}`),
      );
  }
}

/** pg_promote() without its 100 ms polling, over the probe connection. */
async function promote(ctx: PromotionContext, n: NodeRef): Promise<void> {
  const prober = ctx.members.prober(n.name);
  try {
    await prober.query('SELECT pg_promote(false)');
  } catch {
    return ctx.cluster.promote(n);
  }
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    const r = await prober.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec').catch(() => null);
    if (r && r[0]?.rec === false) return;
    await sleep(5);
  }
  throw new HaError(ErrorCodes.TIMEOUT, `${n.name} did not finish its promotion within 60 s`);
}
