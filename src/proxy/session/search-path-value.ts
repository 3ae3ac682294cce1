/**
 * The search_path a session has now, as the shard planner follows it (sharding/search-path.ts):
 * the last SET, SET LOCAL or RESET of the open transaction, else the value its committed settings
 * hold (a SET, or the start-up packet's `search_path` / `options=-c search_path=…`), as SQL text;
 * undefined for the server's default. RESET gives the start-up value back (reset-rewrite.ts).
 * The common case — no SET in the transaction, none in the session — costs one map lookup.
 */
import type { SessionEffect } from '../../sql/session-effect.js';

export function sessionSearchPath(
  committed: ReadonlyMap<string, string>,
  startup: ReadonlyMap<string, string>,
  tx: readonly SessionEffect[],
): string | undefined {
  for (let i = tx.length - 1; i >= 0; i--) {
    const e = tx[i]!;
    if (e.kind === 'local' && e.searchPath !== undefined) return e.searchPath;
    if (e.kind === 'set' && e.name === 'search_path') return e.value;
    if (e.kind === 'reset_all' || (e.kind === 'reset' && e.name === 'search_path'))
      return startup.get('search_path');
  }
  return committed.get('search_path');
}
