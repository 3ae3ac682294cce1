/**
 * Carrying out the action decide() chose for a group: the short ones inline (take the leader key,
 * start the primary, fence a node, re-point a standby), the long ones beside the loop (start a
 * standby, rejoin with pg_rewind or a clone: seconds to minutes during which the loop goes on
 * watching the primary), failover and switchover through promotion.ts. Every action is logged in
 * one line and recorded in the history; the lease is renewed while the leader is healthy.
 */
import { performance } from 'node:perf_hooks';
import type { Action, GroupSnapshot } from './decide.js';
import { healthyPrimary } from './decide.js';
import { failover, switchover } from './promotion.js';
import type { PromotionContext } from './promotion.js';
import { ms, wonLeadership } from './group-state.js';

/** What the actions need of the HA service beyond what a promotion does. */
export interface ActionContext extends PromotionContext {
  /** Runs a long action beside the loop; the node counts as busy until it ends. */
  background(group: number, node: string, what: string, fn: () => Promise<void>): void;
}

export async function carryOut(
  ctx: ActionContext,
  group: number,
  snap: GroupSnapshot,
  a: Action,
): Promise<void> {
  const st = ctx.group(group);
  if (a.kind !== 'none' && a.kind !== 'refuse') {
    ctx.log.info(
      { group, action: a.kind, ...('node' in a ? { node: a.node } : {}) },
      `group ${group}: ${describe(a)}`,
    );
  }
  switch (a.kind) {
    case 'none':
      if (st.leader && healthyPrimary(snap.members.find((m) => m.name === st.leader!.node)!)) {
        await ctx.leases.renew(group, st.leaderKv);
      }
      if (a.reason !== st.lastNone && a.reason !== 'healthy') {
        ctx.log.info({ group }, `group ${group}: ${a.reason}`);
      }
      st.lastNone = a.reason;
      return;
    case 'refuse':
      if (a.reason !== st.lastRefusal) {
        ctx.log.warn({ group }, `group ${group}: ${a.reason}`);
        await ctx.record({ group, event: 'refused', detail: a.reason });
      }
      st.lastRefusal = a.reason;
      ctx.finishRequest(group, { ok: false, reason: a.reason });
      return;
    case 'acquire':
      return acquire(ctx, group, a.node);
    case 'start_primary':
      await ctx.ops.startPrimary(ctx.node(a.node));
      await ctx.record({ group, event: 'primary_started', node: a.node, detail: a.reason });
      return;
    case 'fence': {
      const killed = await ctx.ops.fence(ctx.node(a.node));
      await ctx.record({
        group,
        event: 'fenced',
        node: a.node,
        detail: `${a.reason}; ${killed} processes killed`,
      });
      return;
    }
    case 'repoint':
      await ctx.leases.renew(group, st.leaderKv);
      await ctx.ops.repoint(ctx.node(a.node), ctx.node(st.leader!.node));
      await ctx.record({ group, event: 'repointed', node: a.node, detail: a.reason });
      return;
    case 'start_standby': {
      await ctx.leases.renew(group, st.leaderKv);
      const leader = ctx.node(st.leader!.node);
      ctx.background(group, a.node, 'start_standby', async () => {
        try {
          await ctx.ops.startStandby(ctx.node(a.node), leader);
        } catch (e) {
          // A standby that cannot start under the leader has most likely diverged: rewind it next.
          await ctx.ops.markForRejoin(ctx.node(a.node));
          throw e;
        }
        await ctx.record({ group, event: 'standby_restarted', node: a.node });
      });
      return;
    }
    case 'rejoin': {
      await ctx.leases.renew(group, st.leaderKv);
      const t0 = performance.now();
      const leader = ctx.node(st.leader!.node);
      // In the background: a rewind takes seconds and a clone minutes, during which the loop
      // must go on watching the primary (and the proxy must not wait for it).
      ctx.background(group, a.node, 'rejoin', async () => {
        const how = await ctx.ops.rejoin(ctx.node(a.node), leader);
        ctx.members.noteRejoined(a.node);
        await ctx.record({
          group,
          event: 'rejoined',
          node: a.node,
          detail: `${how} in ${ms(t0)} ms; follows ${leader.name}`,
        });
      });
      return;
    }
    case 'failover':
      return failover(ctx, group, snap, a.from, a.to, a.reason);
    case 'switchover':
      return switchover(ctx, group, a.from, a.to);
  }
}

/** A group with no leader: `node` (a healthy primary) takes the key, keeping its epoch if it had it. */
async function acquire(ctx: ActionContext, group: number, node: string): Promise<void> {
  const st = ctx.group(group);
  const prev = await ctx.leases.readEpoch(group);
  const epoch = prev && prev.node === node ? prev.epoch : Math.max(st.lastEpoch, prev?.epoch ?? 0) + 1;
  const leader = { node, epoch };
  if (!(await ctx.leases.take(group, leader, 0))) return; // someone else took it meanwhile; next cycle sees who
  wonLeadership(st, leader);
  await ctx.record({ group, event: 'leader_acquired', node, epoch });
}

function describe(a: Action): string {
  switch (a.kind) {
    case 'failover':
      return `failover ${a.from ?? '?'} → ${a.to}: ${a.reason}`;
    case 'switchover':
      return `switchover ${a.from} → ${a.to}`;
    case 'none':
    case 'refuse':
      return a.reason;
    default:
      return `${a.kind} ${a.node}: ${a.reason}`;
  }
}
