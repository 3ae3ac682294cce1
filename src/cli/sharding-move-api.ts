/**
 * The shard moves' ways in, besides the CLI: the controller's HTTP API (`/sharding/…`, strict
 * bodies, docs/http-api.md) and Citus's calls through the proxy (citus_move_shard_placement,
 * citus_rebalance_start/wait/stop, citus_drain_node), both over the MoveRunner
 * (sharding-moves.ts).
 */
import type pg from 'pg';
import type { ApiCall } from '../sharding/api-call.js';
import type { Catalog } from '../sharding/types.js';
import { apiError, apiResult } from '../proxy/sharding.js';
import { JobError, shardById } from './sharding-moves.js';
import type { JobRecord, MoveRunner } from './sharding-moves.js';

/** A JSON field as text ('' when it is neither a string nor a number). */
function text(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
}

/** POST/GET /sharding/…: shard moves, rebalance, drain; null for another path. */
export function moveHttp(
  moves: MoveRunner,
  method: string,
  path: string,
  body: unknown,
): { status: number; body: unknown } | null {
  if (!path.startsWith('/sharding/')) return null;
  if (body !== null && (typeof body !== 'object' || Array.isArray(body)))
    return { status: 400, body: { error: 'the request body must be a JSON object' } };
  const b = (body ?? {}) as Record<string, unknown>;
  const allowed: Record<string, readonly string[]> = {
    '/sharding/move': ['shard_id', 'to'],
    '/sharding/rebalance': ['by'],
    '/sharding/drain': ['group', 'by'],
    '/sharding/cancel': [],
  };
  const keys = allowed[path];
  const unknown = keys === undefined ? undefined : Object.keys(b).find((k) => !keys.includes(k));
  if (method === 'POST' && unknown !== undefined)
    return {
      status: 400,
      body: {
        error: `unknown key "${unknown}" in the request body; it accepts ${keys!.join(', ') || 'none'}`,
      },
    };
  try {
    if (method === 'GET' && path === '/sharding/moves') return { status: 200, body: moves.status() };
    if (method !== 'POST') return null;
    switch (path) {
      case '/sharding/move': {
        const shardId = b.shard_id;
        if (typeof shardId !== 'number' || !Number.isInteger(shardId))
          throw new JobError('shard_id: must be a shard id (a JSON integer, see citus_shards)');
        return {
          status: 202,
          body: { job: moves.submit({ kind: 'move', shardId, to: text(b.to) }) },
        };
      }
      case '/sharding/rebalance': {
        const by = b.by === undefined ? 'count' : b.by;
        if (by !== 'count' && by !== 'size') throw new JobError('by must be "count" or "size"');
        return { status: 202, body: { job: moves.submit({ kind: 'rebalance', by }) } };
      }
      case '/sharding/drain':
        if (!/^\d+$/.test(text(b.group))) throw new JobError('group: must name a group (0, 1, …)');
        return {
          status: 202,
          body: {
            job: moves.submit({
              kind: 'drain',
              group: text(b.group),
              ...(b.by === 'size' || b.by === 'count' ? { by: b.by } : {}),
            }),
          },
        };
      case '/sharding/cancel':
        return { status: moves.cancel() ? 202 : 409, body: { cancelled: moves.busy } };
      default:
        return null;
    }
  } catch (e) {
    if (e instanceof JobError) return { status: e.status, body: { error: e.message } };
    throw e;
  }
}

export interface MoveCallDeps {
  readonly moves: MoveRunner;
  catalog(): Catalog | null;
  /** Where group `g`'s primary is (citus_shards names nodes by it). */
  primaryOf(g: string): { readonly host: string; readonly port: number } | null;
  /** `user` may move shards (a superuser, or the owner of every distributed table). */
  mayMove(user: string): Promise<boolean>;
}

/**
 * Citus's shard-move calls through the proxy: citus_move_shard_placement (nodes named by their
 * group's primary, as citus_shards shows them) and citus_drain_node wait for their job;
 * citus_rebalance_start returns its job id; citus_rebalance_wait and _stop. The caller must be a
 * superuser or own every distributed table (what a move may touch).
 */
export async function moveCall(call: ApiCall, user: string, d: MoveCallDeps): Promise<Buffer[]> {
  const catalog = d.catalog();
  if (!catalog) return apiError('57P03', 'the sharding catalog is not loaded');
  if (!(await d.mayMove(user)))
    return apiError('42501', `${call.fn} needs a superuser or the owner of every distributed table`);
  const groupAt = (name: unknown, port: unknown): string | null => {
    for (const g of catalog.groups) {
      const p = d.primaryOf(g);
      if (p && p.host === name && p.port === Number(port)) return g;
    }
    return null;
  };
  const done = (job: JobRecord): Buffer[] =>
    job.state === 'done'
      ? apiResult(call.column, 'void', '')
      : apiError('55000', `${job.kind} job ${job.id} ${job.state}${job.error ? `: ${job.error}` : ''}`);
  try {
    switch (call.fn) {
      case 'citus_move_shard_placement': {
        const from = groupAt(call.args.source_node_name, call.args.source_node_port);
        const to = groupAt(call.args.target_node_name, call.args.target_node_port);
        if (from === null || to === null)
          return apiError('22023', 'a node named here is not the primary of a group (see citus_shards)');
        const shardId = Number(call.args.shard_id);
        const found = shardById(catalog, shardId);
        if (found !== null && found.group !== from)
          return apiError(
            '22023',
            `shard ${shardId} is not on ${String(call.args.source_node_name)}:${String(call.args.source_node_port)}`,
          );
        d.moves.submit({ kind: 'move', shardId, to });
        return done(await d.moves.wait()!);
      }
      case 'citus_drain_node': {
        const g = groupAt(call.args.nodename, call.args.nodeport);
        if (g === null) return apiError('22023', 'the node named is not the primary of a group');
        d.moves.submit({ kind: 'drain', group: g });
        return done(await d.moves.wait()!);
      }
      case 'citus_rebalance_start': {
        const strategy = call.args.rebalance_strategy;
        if (strategy !== null && strategy !== 'by_shard_count' && strategy !== 'by_disk_size')
          return apiError(
            '22023',
            `no rebalance strategy named ${String(strategy)} (by_shard_count, by_disk_size)`,
          );
        if (call.args.drain_only === true) return apiError('0A000', 'drain_only: use citus_drain_node');
        const job = d.moves.submit({
          kind: 'rebalance',
          by: strategy === 'by_disk_size' ? 'size' : 'count',
        });
        return apiResult(call.column, 'bigint', job.id);
      }
      case 'citus_rebalance_wait': {
        const w = d.moves.wait();
        if (w !== null) await w;
        return apiResult(call.column, 'void', '');
      }
      case 'citus_rebalance_stop': {
        const w = d.moves.wait();
        d.moves.cancel();
        if (w !== null) await w;
        return apiResult(call.column, 'void', '');
      }
      default:
        return apiError('0A000', `${call.fn} is not a shard move call`);
    }
  } catch (e) {
    if (e instanceof JobError) return apiError(e.status === 409 ? '55006' : '22023', e.message);
    return apiError('XX000', `sharding: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** `user` is a superuser or a member of the owner of every distributed table (read on group 0). */
export async function mayMove(
  user: string,
  catalog: Catalog | null,
  client: () => pg.Client,
): Promise<boolean> {
  const tables = [...(catalog?.tables.values() ?? [])].filter((t) => t.kind === 'distributed');
  const c = client();
  try {
    await c.connect();
    const r = await c.query<{ ok: boolean }>(
      `SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = $1), false)
           OR coalesce(bool_and(pg_has_role($1, c.relowner, 'USAGE')), true) AS ok
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
      [user, tables.map((t) => t.rel.schema), tables.map((t) => t.rel.name)],
    );
    return r.rows[0]?.ok === true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

const STATES: Record<JobRecord['state'], string> = {
  running: 'running',
  done: 'finished',
  failed: 'failed',
  cancelled: 'cancelled',
};

/**
 * citus_rebalance_status()'s row, as Citus's (job_id, state, job_type, description, started_at,
 * finished_at, details): the running job, else the latest; none before any.
 */
export function rebalanceStatusRows(s: {
  current: JobRecord | null;
  history: readonly JobRecord[];
}): (string | null)[][] {
  const job = s.current ?? s.history[0];
  if (!job) return [];
  const description =
    job.kind === 'rebalance'
      ? `Rebalance all colocation groups (by ${job.by ?? 'count'})`
      : job.kind === 'drain'
        ? `Drain group ${job.group ?? ''}`
        : `Move shard ${job.moves[0]?.shard_id ?? ''} to group ${job.moves[0]?.to ?? ''}`;
  const details = {
    moves: job.moves.length,
    done: job.moves.filter((m) => m.state === 'done').length,
    running: job.moves.filter((m) => m.state === 'running'),
    ...(job.error ? { error: job.error } : {}),
  };
  return [
    [
      job.id,
      STATES[job.state],
      job.kind,
      description,
      job.started_at,
      job.finished_at ?? null,
      JSON.stringify(details),
    ],
  ];
}
