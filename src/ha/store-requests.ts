/**
 * Switchover and failover requests carried by the state store, for a cluster of several hosts
 * where the decide loop runs inside whichever agent is the decider (no HTTP API to call): the CLI
 * writes `requests/<id>` and waits for `outcomes/<id>`; the decider takes each request, asks its
 * HaService, and writes the outcome. Both sides are here.
 *
 * No request runs twice, and none outlives the one who asked:
 * - the CLI writes its request under a lease of its own, kept alive while it waits: a CLI that
 *   dies takes its request with it (a switchover nobody waits for is never run later);
 * - the decider takes a request by compare-and-set on its revision, moving it under its own
 *   session lease and naming itself (`claimed_by`); a request already taken is never taken again,
 *   so a decider that changes mid-request cannot run it a second time; and if the decider that
 *   took it dies, the request vanishes with its session and the CLI says so;
 * - the outcome goes under the CLI's lease (gone when the CLI is), before the request is deleted,
 *   so a request key that is gone with no outcome means its decider stopped before answering.
 * A request nobody takes within the claim time is withdrawn by the CLI (compare-and-delete on its
 * own revision: if that fails, a decider took it at the last moment and the CLI waits on).
 */
import { randomBytes } from 'node:crypto';
import { errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { AGENT_KEYS } from './agent-rpc.js';
import { sleep } from './group-state.js';
import type { HaControl, HaEvent, RequestOutcome } from './ha-routes.js';
import { parseChangeBody } from './ha-routes.js';
import { HaHistory } from './ha-history.js';
import { HA_KEYS } from './leader-lease.js';
import type { KeyValue, LeaseId, StateStore } from './store.js';

export const REQUEST_KEYS = {
  requests: 'requests/',
  request: (id: string) => `requests/${id}`,
  outcome: (id: string) => `outcomes/${id}`,
};

export type RequestKind = 'switchover' | 'failover';

/** What `requests/<id>` holds. */
export interface StoreRequest {
  readonly group: number;
  readonly kind: RequestKind;
  readonly to: string | null;
  /** When it was asked (wall clock of the asking machine: for people, not for decisions). */
  readonly at: string;
  /** The asker's lease: the outcome goes under it. */
  readonly lease: LeaseId;
  /** The decider's host, once one has taken it. */
  readonly claimed_by?: string;
}

/** A request as stored, checked: the request, or why it cannot be run. */
export function parseStoreRequest(
  value: string,
  groupCount: number,
  nodesOf: (group: number) => readonly string[],
): { request: StoreRequest } | { error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch {
    return { error: 'the request is not JSON' };
  }
  if (typeof raw !== 'object' || raw === null) return { error: 'the request is not an object' };
  const { kind, at, lease, claimed_by: claimedBy, group, to } = raw as Record<string, unknown>;
  if (kind !== 'switchover' && kind !== 'failover')
    return { error: `kind: ${JSON.stringify(kind)} is neither "switchover" nor "failover"` };
  if (typeof lease !== 'string' || lease === '') return { error: 'lease: missing' };
  if (typeof at !== 'string') return { error: 'at: missing' };
  if (claimedBy !== undefined && typeof claimedBy !== 'string') return { error: 'claimed_by: not a string' };
  const body = to === null ? { group } : { group, to };
  const p = parseChangeBody(body, groupCount, nodesOf);
  if ('error' in p) return p;
  return {
    request: {
      group: p.group,
      kind,
      to: p.to,
      at,
      lease,
      ...(claimedBy !== undefined ? { claimed_by: claimedBy } : {}),
    },
  };
}

/** Where a request stands, from its two keys (read outcome, then request, then outcome again). */
export type RequestState =
  | { state: 'waiting' }
  | { state: 'claimed'; by: string }
  | { state: 'done'; outcome: RequestOutcome; by: string | null }
  | { state: 'lost' };

export function requestState(request: KeyValue | null, outcome: KeyValue | null): RequestState {
  if (outcome) {
    try {
      const { by, ...rest } = JSON.parse(outcome.value) as RequestOutcome & { by?: unknown };
      return { state: 'done', outcome: rest, by: typeof by === 'string' ? by : null };
    } catch {
      return { state: 'done', outcome: { ok: false, reason: 'the decider answered with no JSON' }, by: null };
    }
  }
  if (!request) return { state: 'lost' };
  try {
    const by = (JSON.parse(request.value) as { claimed_by?: unknown }).claimed_by;
    return typeof by === 'string' ? { state: 'claimed', by } : { state: 'waiting' };
  } catch {
    return { state: 'waiting' };
  }
}

export interface SubmitOptions {
  /** How long a request may wait for a decider to take it (ms). */
  readonly claimTimeoutMs: number;
  /** How long a taken request may run before the CLI stops waiting (ms). */
  readonly runTimeoutMs?: number;
  readonly pollMs?: number;
  /** Told once, when a decider takes the request. */
  readonly onClaimed?: (host: string) => void;
}

/** Describes the decider key for a message: who holds it, or that nobody does. */
async function deciderText(store: StateStore): Promise<string> {
  const kv = await store.get(AGENT_KEYS.decider).catch(() => null);
  if (!kv) {
    const agents = await store.list(AGENT_KEYS.agents).catch(() => []);
    return agents.length === 0
      ? `no agent is registered under ${AGENT_KEYS.agents} and nobody holds the "${AGENT_KEYS.decider}" key: is \`pgscale agent\` running on the database hosts?`
      : `nobody holds the "${AGENT_KEYS.decider}" key (agents present: ${agents.map((a) => a.key.slice(AGENT_KEYS.agents.length)).join(', ')}; one takes it within a loop unless the store is unreachable for it)`;
  }
  let host = kv.value;
  try {
    host = (JSON.parse(kv.value) as { host: string }).host;
  } catch {
    // shown as stored
  }
  return `the decider is the agent of ${host}, and it did not take the request (is it stuck? see its log)`;
}

/**
 * Asks the decider for a switchover or failover and waits for its answer. Resolves with the
 * outcome; a request nobody takes, or whose decider stops before answering, resolves not ok
 * with a reason naming what is missing.
 */
export async function submitRequest(
  store: StateStore,
  r: { group: number; kind: RequestKind; to: string | null },
  o: SubmitOptions,
): Promise<RequestOutcome> {
  const runTimeoutMs = o.runTimeoutMs ?? 180_000;
  const pollMs = o.pollMs ?? 200;
  const leaseTtlMs = 10_000;
  const lease = await store.grantLease(leaseTtlMs);
  const id = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
  const keeper = setInterval(() => void store.keepAlive(lease).catch(() => false), leaseTtlMs / 4);
  try {
    const req: StoreRequest = { ...r, at: new Date().toISOString(), lease };
    const rev = await store.compareAndSet(REQUEST_KEYS.request(id), 0, JSON.stringify(req), { lease });
    if (rev === null) return { ok: false, reason: `request ${id} exists already` };
    const start = Date.now();
    let claimedAt: number | null = null;
    for (;;) {
      const st = await readState(store, id);
      if (st.state === 'done') {
        // Answered between two looks: the outcome names who took it.
        if (claimedAt === null && st.by !== null) o.onClaimed?.(st.by);
        return st.outcome;
      }
      if (st.state === 'lost')
        return {
          ok: false,
          reason:
            claimedAt === null
              ? `request ${id} vanished before a decider took it (the store lost this command's lease?)`
              : `the decider that took the request stopped before answering (its session ended); \`pgscale history\` shows what was done`,
        };
      if (st.state === 'claimed' && claimedAt === null) {
        claimedAt = Date.now();
        o.onClaimed?.(st.by);
      }
      if (claimedAt === null && Date.now() - start > o.claimTimeoutMs) {
        if (await store.compareAndDelete(REQUEST_KEYS.request(id), rev)) {
          return {
            ok: false,
            reason: `no decider took the request within ${Math.round(o.claimTimeoutMs / 1000)} s: ${await deciderText(store)}`,
          };
        }
        continue; // taken at the last moment
      }
      if (claimedAt !== null && Date.now() - claimedAt > runTimeoutMs)
        return {
          ok: false,
          reason: `no answer within ${Math.round(runTimeoutMs / 1000)} s of the decider taking the request; \`pgscale history\` shows what was done`,
        };
      await sleep(pollMs);
    }
  } finally {
    clearInterval(keeper);
    // The request (if not taken) and the outcome go with the lease.
    await store.revokeLease(lease).catch(() => undefined);
  }
}

async function readState(store: StateStore, id: string): Promise<RequestState> {
  const outcome = await store.get(REQUEST_KEYS.outcome(id));
  if (outcome) return requestState(null, outcome);
  const request = await store.get(REQUEST_KEYS.request(id));
  if (request) return requestState(request, null);
  return requestState(null, await store.get(REQUEST_KEYS.outcome(id)));
}

/** What the decider's side needs of the HA service. */
export type RequestTarget = Pick<HaControl, 'request' | 'groupCount' | 'nodesOf'>;

/**
 * The decider's side: every `pollMs` it reads `requests/`, takes each request nobody has taken,
 * has the HA service carry it out, and writes the outcome. start() when this agent becomes the
 * decider, stop() when it no longer is (running requests are answered by the HA service's stop).
 */
export class RequestDesk {
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private readonly running = new Set<string>();
  private stopped = false;

  constructor(
    private readonly store: () => StateStore,
    private readonly ha: RequestTarget,
    private readonly host: string,
    private readonly lease: () => LeaseId | null,
    private readonly log: Logger,
    private readonly pollMs = 500,
  ) {}

  start(): this {
    const next = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.polling = this.poll()
          .catch((e: unknown) => this.log.warn(`reading requests failed: ${errorMessage(e)}`))
          .finally(next);
      }, this.pollMs);
    };
    next();
    return this;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Waits for the poll in progress (tests; the answers of running requests are not awaited). */
  async idle(): Promise<void> {
    await this.polling;
  }

  /** One look at the queue: takes and starts every request nobody has taken. */
  async poll(): Promise<void> {
    const lease = this.lease();
    if (lease === null) return;
    const kvs = await this.store().list(REQUEST_KEYS.requests);
    for (const kv of kvs) {
      if (this.stopped) return;
      const id = kv.key.slice(REQUEST_KEYS.requests.length);
      if (id.includes('/') || this.running.has(id)) continue;
      const p = parseStoreRequest(kv.value, this.ha.groupCount, (g) => this.ha.nodesOf(g));
      if ('request' in p && p.request.claimed_by !== undefined) continue;
      const claimed = JSON.stringify({
        ...('request' in p ? p.request : safeJson(kv.value)),
        claimed_by: this.host,
      });
      const rev = await this.store().compareAndSet(kv.key, kv.revision, claimed, { lease });
      if (rev === null) continue; // taken by another, withdrawn, or our session just ended
      this.running.add(id);
      void this.answer(id, kv, rev, p).finally(() => this.running.delete(id));
    }
  }

  private async answer(
    id: string,
    request: KeyValue,
    rev: number,
    p: ReturnType<typeof parseStoreRequest>,
  ): Promise<void> {
    let outcome: RequestOutcome;
    if ('error' in p) {
      outcome = { ok: false, reason: `bad request: ${p.error}` };
    } else {
      const { group, kind, to } = p.request;
      this.log.info(
        { group, request: kind, to, id },
        `request ${id}: ${kind} of group ${group}${to ? ` to ${to}` : ''} (from the store)`,
      );
      outcome = await this.ha
        .request(group, { kind, to })
        .catch((e: unknown): RequestOutcome => ({ ok: false, reason: errorMessage(e) }));
    }
    const asker = 'request' in p ? p.request.lease : safeJson(request.value).lease;
    try {
      if (typeof asker === 'string')
        await this.store().put(REQUEST_KEYS.outcome(id), JSON.stringify({ ...outcome, by: this.host }), {
          lease: asker,
        });
    } catch (e) {
      // The asker's lease ended (it stopped waiting): nobody to tell.
      this.log.warn(`request ${id}: outcome not written: ${errorMessage(e)}`);
    }
    await this.store()
      .compareAndDelete(request.key, rev)
      .catch(() => false);
  }
}

function safeJson(value: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(value);
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * Pauses or resumes automatic failover through the store: the `paused` key, which the decide
 * loop reads every cycle, and the event in the history (written here: the history says who
 * asked when, whether or not a decider runs).
 */
export async function setPausedInStore(store: StateStore, paused: boolean): Promise<HaEvent> {
  if (paused) await store.put(HA_KEYS.paused, 'true');
  else {
    const cur = await store.get(HA_KEYS.paused);
    if (cur) await store.compareAndDelete(HA_KEYS.paused, cur.revision);
  }
  return new HaHistory(() => store).record({
    group: -1,
    event: paused ? 'ha_paused' : 'ha_resumed',
    detail: 'through the state store',
  });
}
