/**
 * Where a batch of reads goes at a consistency level: a replica that has replayed the position the
 * level asks for (route.ts readPosition), now or after a bounded wait, or else the primary. The
 * positions come from the client's own last commit and the primary's commit horizon: causal reads
 * first wait for commits whose position is still being asked (they may already be acknowledged),
 * linearizable reads ask where the primary stands now.
 */
import type { Pool } from '../backend/pool.js';
import type { CommitHorizon } from '../commit-horizon.js';
import type { Consistency, ReadRouter, ReplicaTarget } from '../read-router.js';
import { readPosition } from './route.js';

/** Called once with the chosen server's pool (and replica, null for the primary). */
export type ReadTargetCallback = (pool: Pool, replica: ReplicaTarget | null) => void;

export function pickReadTarget(
  router: ReadRouter,
  horizon: CommitHorizon | null,
  consistency: Consistency,
  client: { readonly wroteLsn: bigint | null },
  primary: Pool,
  go: ReadTargetCallback,
): void {
  if (consistency === 'linearizable' && horizon) {
    // Where the primary stands now (one question per batch of reads), then a replica there.
    void horizon.position().then((pos) => {
      if (pos === null) return go(primary, null);
      return router
        .forRead(consistency, readPosition(consistency, client.wroteLsn, pos))
        .then(({ pool, replica }) => go(pool, replica));
    });
    return;
  }
  if (consistency === 'causal' && horizon) {
    const settled = horizon.settled(router.settings.rywWaitMs);
    if (settled) {
      void settled.then((ok) =>
        ok
          ? readAt(router, consistency, readPosition(consistency, client.wroteLsn, horizon.lsn), go)
          : go(primary, null),
      );
      return;
    }
  }
  const known = consistency === 'linearizable' ? null : (horizon?.lsn ?? null);
  readAt(router, consistency, readPosition(consistency, client.wroteLsn, known), go);
}

/** A replica that has replayed `minLsn` (now, or after a bounded wait), or the primary. */
function readAt(
  router: ReadRouter,
  consistency: Consistency,
  minLsn: bigint | null,
  go: ReadTargetCallback,
): void {
  const ready = router.readNow(consistency, minLsn);
  if (ready) go(ready.pool, ready.replica);
  else void router.forRead(consistency, minLsn).then(({ pool, replica }) => go(pool, replica));
}
