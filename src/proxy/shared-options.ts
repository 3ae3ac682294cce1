/**
 * One SessionOptions object for the clients of a pool that would get identical ones. The options
 * are the pool's, its router and horizon, and the client's start-up settings — shared already
 * between clients that gave the same (frontend/startup-params.ts) — so most clients of a pool
 * would each keep an equal copy (~130 bytes per idle client). Sessions never write to them.
 * Only the last options made for each pool are remembered: a change (a new router after a
 * topology change) starts a new shared object, and sessions made before keep theirs.
 */
import type { Pool } from './backend/pool.js';
import type { SessionOptions } from './session/context.js';

export class SharedOptions {
  private readonly last = new WeakMap<Pool, SessionOptions>();

  /** `o`, or an earlier object of the same pool whose every field is the same value. */
  of(o: SessionOptions): SessionOptions {
    const prev = this.last.get(o.pool);
    if (prev !== undefined && sameFields(prev, o)) return prev;
    this.last.set(o.pool, o);
    return o;
  }
}

function sameFields(a: SessionOptions, b: SessionOptions): boolean {
  const ka = Object.keys(a) as (keyof SessionOptions)[];
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!Object.is(a[k], b[k]) || !(k in b)) return false;
  return true;
}
