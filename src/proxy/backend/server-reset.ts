/**
 * Making a server connection fit for its next client when it comes back to the pool: in-flight
 * cancels land first (one arriving later would cancel someone else's query), an open transaction
 * is rolled back, and a session a client left state on is reset with DISCARD ALL (or only its
 * sequence state with DISCARD SEQUENCES, which keeps the prepared statements).
 */
import type { ServerConn } from './server-conn.js';

/** Cleans `c` for reuse; false when it cannot be made clean (then it is closed). */
export async function cleanForReuse(c: ServerConn, sessionMode: boolean): Promise<boolean> {
  for (let i = 0; i < 100 && c.cancelsInFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
  if (c.cancelsInFlight > 0) return false;
  if (c.txStatus !== 'I') {
    const r = await c.query('ROLLBACK');
    if (r.error) return false;
  }
  if (c.needsReset || sessionMode) {
    // Session mode resets at every release, as PgBouncer's server_reset_query does.
    const r = await c.query('DISCARD ALL');
    if (r.error) return false;
    c.prepared.clear();
    c.settings = new Map();
    c.needsReset = false;
  } else if (c.needsSequenceReset) {
    // Cheaper than DISCARD ALL, and the connection keeps its prepared statements.
    const r = await c.query('DISCARD SEQUENCES');
    if (r.error) return false;
  }
  c.needsSequenceReset = false;
  return c.txStatus === 'I';
}
