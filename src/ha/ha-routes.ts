/**
 * The HTTP routes of high availability (GET /ha, GET /ha/history, POST /ha/switchover,
 * /ha/failover, /ha/pause, /ha/resume), kept apart from the decide loop. Every request body is
 * validated strictly with zod before anything happens: an object with only the known keys, the
 * group a JSON integer of an existing group (never a string such as "0x0", which Number() would
 * read as 0), `to` a string naming a node of that group. `shard`, the group's name before
 * replication shards were renamed groups, is still taken in its place (not both at once). A
 * malformed request is answered 400 with a message naming the field, and changes nothing (a
 * request that silently dropped a malformed `to` once ran an untargeted failover).
 */
import { z } from 'zod';
import type { Request } from './decide.js';

/** One recorded HA event, as GET /ha/history and `pgscale history` show it. */
export interface HaEvent {
  at: string;
  group: number;
  event: string;
  node?: string;
  epoch?: number;
  detail?: string;
}

export type RequestOutcome = { ok: true; events: HaEvent[] } | { ok: false; reason: string };

/** What the routes need from the HA service. */
export interface HaControl {
  status(): unknown;
  readonly isPaused: boolean;
  history(limit: number): Promise<HaEvent[]>;
  request(group: number, request: Request): Promise<RequestOutcome>;
  setPaused(paused: boolean): Promise<void>;
  /** Number of replication groups. */
  readonly groupCount: number;
  /** Names of the nodes of a group. */
  nodesOf(group: number): readonly string[];
}

export interface RouteResult {
  status: number;
  body: unknown;
}

export const HISTORY_LIMIT = 500;

const ChangeBody = z.strictObject({
  group: z.number().int().min(0).optional().describe('the group, a JSON integer; default 0'),
  shard: z.number().int().min(0).optional().describe('the old name of group (deprecated)'),
  to: z.string().min(1).optional().describe('the node to promote; default: the best standby'),
});
/** Pause and resume take no parameters: no body, or an empty object. */
const EmptyBody = z.union([z.null(), z.strictObject({})]);

/** The parsed body, or the 400 answer naming what is wrong. */
export function parseChangeBody(
  body: unknown,
  groupCount: number,
  nodesOf: (group: number) => readonly string[],
): { group: number; to: string | null } | { error: string } {
  const r = ChangeBody.safeParse(body ?? {});
  if (!r.success) return { error: describeIssue(r.error.issues[0]!, ['group', 'to']) };
  if (r.data.group !== undefined && r.data.shard !== undefined) {
    return { error: 'shard: is the old name of group, and group is given too; give only group' };
  }
  const group = r.data.group ?? r.data.shard ?? 0;
  if (group >= groupCount) {
    return { error: `group: there is no group ${group} (the cluster has ${groupCount})` };
  }
  const to = r.data.to ?? null;
  if (to !== null && !nodesOf(group).includes(to))
    return { error: `to: ${to} is not a node of group ${group}` };
  return { group, to };
}

export function parseEmptyBody(body: unknown): { error: string } | null {
  const r = EmptyBody.safeParse(body);
  return r.success ? null : { error: describeIssue(r.error.issues[0]!, []) };
}

/** `limit` of GET /ha/history: a positive integer in decimal digits, at most 100000. */
export function parseLimit(raw: string | null): number | { error: string } {
  if (raw === null) return HISTORY_LIMIT;
  if (!/^[0-9]{1,6}$/.test(raw) || Number(raw) < 1 || Number(raw) > 100_000) {
    return { error: `limit: ${JSON.stringify(raw)} is not an integer from 1 to 100000` };
  }
  return Number(raw);
}

function describeIssue(issue: z.core.$ZodIssue, allowed: readonly string[]): string {
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
    return `unknown key ${keys} in the request body; ${
      allowed.length ? `it accepts ${allowed.join(', ')}` : 'this request takes no parameters'
    }`;
  }
  const field = issue.path.length ? issue.path.map(String).join('.') : 'the request body';
  const what: Record<string, string> = {
    group: 'must be a non-negative integer (a JSON number, not a string)',
    shard: 'must be a non-negative integer (a JSON number, not a string)',
    to: 'must be a non-empty string naming a node',
  };
  const top = String(issue.path[0] ?? '');
  if (what[top]) return `${field}: ${what[top]}; ${issue.message}`;
  return `${field}: ${issue.message}`;
}

/** GET /ha, GET /ha/history, POST /ha/switchover|failover|pause|resume; null for other paths. */
export async function handleHaRoute(
  ha: HaControl,
  method: string,
  path: string,
  body: unknown,
  query: URLSearchParams,
): Promise<RouteResult | null> {
  const key = `${method} ${path}`;
  const bad = (error: string): RouteResult => ({ status: 400, body: { error } });
  switch (key) {
    case 'GET /ha':
      return { status: 200, body: ha.status() };
    case 'GET /ha/history': {
      const limit = parseLimit(query.get('limit'));
      if (typeof limit !== 'number') return bad(limit.error);
      return { status: 200, body: { events: await ha.history(limit) } };
    }
    case 'POST /ha/switchover':
    case 'POST /ha/failover': {
      const p = parseChangeBody(body, ha.groupCount, (s) => ha.nodesOf(s));
      if ('error' in p) return bad(p.error);
      const kind = path === '/ha/switchover' ? 'switchover' : 'failover';
      const r = await ha.request(p.group, { kind, to: p.to });
      return r.ok
        ? { status: 200, body: { ok: true, events: r.events } }
        : { status: 409, body: { ok: false, error: r.reason } };
    }
    case 'POST /ha/pause':
    case 'POST /ha/resume': {
      const e = parseEmptyBody(body);
      if (e) return bad(e.error);
      await ha.setPaused(path === '/ha/pause');
      return { status: 200, body: { ok: true, paused: ha.isPaused } };
    }
    default:
      return path === '/ha' || path.startsWith('/ha/')
        ? { status: 404, body: { error: `no such endpoint ${key}` } }
        : null;
  }
}
