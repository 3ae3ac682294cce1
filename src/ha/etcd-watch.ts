/**
 * One etcd watch over the JSON gateway: POST /v3/watch with a create_request answers with a
 * never-ending stream of JSON objects, one per line ({result: {created}} first, then
 * {result: {events: [...]}}). When the stream breaks (a member stopped, the connection dropped)
 * the watch is opened again, on any endpoint, from the revision after the last event delivered,
 * so no change is skipped or repeated; attempts back off from 100 ms to 2 s. A watch whose start
 * revision was compacted away resumes at the oldest revision etcd still has: the changes in
 * between are lost, which is why callers that need certainty re-read with list().
 * A connection that hangs without closing is not detected here (no heartbeat on this path).
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import type { EtcdGateway } from './etcd-gateway.js';

export interface RawEvent {
  readonly type?: 'PUT' | 'DELETE';
  readonly kv: { readonly key: string; readonly value?: string; readonly mod_revision: string };
}

interface WatchResult {
  readonly created?: boolean;
  readonly canceled?: boolean;
  readonly compact_revision?: string;
  readonly cancel_reason?: string;
  readonly events?: readonly RawEvent[];
}

export interface WatchSpec {
  /** Full key (base64) and range end (base64) of the watched range. */
  readonly key: string;
  readonly rangeEnd: string;
  /** First revision to deliver. */
  readonly startRevision: number;
  readonly onEvent: (e: RawEvent) => void;
  readonly logger: Logger | null;
  /** What the log lines call this watch. */
  readonly name: string;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2000;

/** Starts the watch; the returned function stops it (and its connection) for good. */
export function startWatch(gateway: EtcdGateway, spec: WatchSpec): () => void {
  const stop = new AbortController();
  let next = spec.startRevision;
  let backoff = MIN_BACKOFF_MS;
  let broken = false;

  const runOnce = async () => {
    // One controller per attempt, so no listener piles up on `stop` across reconnections, and
    // leaving an attempt for any reason closes its connection.
    const attempt = new AbortController();
    const onStop = () => attempt.abort();
    stop.signal.addEventListener('abort', onStop, { once: true });
    try {
      await follow(attempt.signal);
    } finally {
      stop.signal.removeEventListener('abort', onStop);
      attempt.abort();
    }
  };

  const follow = async (signal: AbortSignal) => {
    const { endpoint, res } = await gateway.stream(
      '/v3/watch',
      { create_request: { key: spec.key, range_end: spec.rangeEnd, start_revision: String(next) } },
      signal,
    );
    if (!res.body) throw new Error(`${endpoint}: empty watch reply`);
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk as Uint8Array, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line === '') continue;
        const msg = JSON.parse(line) as { result?: WatchResult; error?: { message?: string } };
        if (msg.error) throw new Error(`${endpoint}: ${msg.error.message ?? 'watch error'}`);
        const r = msg.result ?? {};
        if (r.canceled) {
          // A refused watch is created and canceled in one reply (a stale token, say).
          const compacted = Number(r.compact_revision ?? 0);
          if (compacted > next) next = compacted;
          const reason = r.cancel_reason ?? `compacted to ${compacted}`;
          if (reason.includes('invalid auth token')) gateway.forgetToken(endpoint);
          throw new Error(`${endpoint}: watch canceled (${reason})`);
        }
        if (r.created) {
          if (broken)
            spec.logger?.info({ endpoint, from_revision: next }, `${spec.name}: watch re-established`);
          broken = false;
          backoff = MIN_BACKOFF_MS;
        }
        for (const e of r.events ?? []) {
          if (stop.signal.aborted) return;
          next = Number(e.kv.mod_revision) + 1;
          spec.onEvent(e);
        }
      }
    }
    throw new Error(`${endpoint}: watch stream ended`);
  };

  void (async () => {
    while (!stop.signal.aborted) {
      try {
        await runOnce();
      } catch (e) {
        if (stop.signal.aborted) break;
        if (!broken)
          spec.logger?.warn(
            { err_message: errorMessage(e), from_revision: next },
            `${spec.name}: watch broken, re-establishing`,
          );
        broken = true;
        await sleep(backoff, stop.signal);
        backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
      }
    }
  })();

  return () => stop.abort();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
