/**
 * Two-phase commit of a statement that runs on several groups (every-group.ts) when the catalog
 * does not change with it (DML on reference tables, split INSERTs, DDL that keeps the tables):
 * nothing outside the groups records the decision, so the order of the two phases does. Each
 * group's transaction is named `pgscale:write:<id>:<position>:<count>`; PREPARE runs on the
 * positions in order 0, 1, … count-1, one after another, and COMMIT PREPARED in the same order.
 * A crash leaves a prefix of the positions prepared (the prepare phase did not finish: roll
 * back, the client was never told of a commit) or a suffix (the commit phase had begun: commit
 * the rest); all of them prepared means the commit phase had not begun (roll back).
 * decideWrite() is that rule; writeDecisions() applies it to what the groups hold.
 * https://www.postgresql.org/docs/current/sql-prepare-transaction.html
 */
import type { Decision } from './distribute-2pc.js';
import { run } from './distribute-2pc.js';
import type { TxSession } from './distribute-2pc.js';
import { DistributeError, quoteLiteral } from './table-ddl.js';

const WRITE_GID = /^pgscale:write:([^:]+):(\d+):(\d+)$/;

/** The transaction name of position `position` among `count` groups of operation `id`. */
export function writeGid(id: string, position: number, count: number): string {
  return `pgscale:write:${id}:${position}:${count}`;
}

export interface ParsedWriteGid {
  readonly id: string;
  readonly position: number;
  readonly count: number;
}

export function parseWriteGid(gid: string): ParsedWriteGid | null {
  const m = WRITE_GID.exec(gid);
  if (m === null) return null;
  const position = Number(m[2]);
  const count = Number(m[3]);
  if (!(position < count)) return null;
  return { id: m[1]!, position, count };
}

/**
 * The decision for an operation of `count` groups of which `present` positions are still
 * prepared: commit when the last is prepared and the first is not (the commit phase, which goes
 * in order, had begun), else roll back.
 */
export function decideWrite(present: ReadonlySet<number>, count: number): Decision {
  return present.has(count - 1) && !present.has(0) ? 'commit' : 'rollback';
}

/** The decision of each `pgscale:write:` transaction found prepared on `sessions`, by gid. */
export async function writeDecisions(sessions: readonly TxSession[]): Promise<Map<string, Decision>> {
  const byId = new Map<string, { count: number; present: Set<number>; gids: string[] }>();
  for (const s of sessions) {
    const rows = await run(
      s,
      "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE 'pgscale:write:%'",
    );
    for (const r of rows) {
      const gid = String(r.gid);
      const p = parseWriteGid(gid);
      if (p === null) continue;
      let e = byId.get(p.id);
      if (e === undefined) byId.set(p.id, (e = { count: p.count, present: new Set(), gids: [] }));
      e.present.add(p.position);
      e.gids.push(gid);
    }
  }
  const out = new Map<string, Decision>();
  for (const e of byId.values()) {
    const d = decideWrite(e.present, e.count);
    for (const gid of e.gids) out.set(gid, d);
  }
  return out;
}

/**
 * PREPARE on every session in order, then COMMIT PREPARED in the same order. A failure before
 * the first COMMIT PREPARED rolls every group back and is thrown; a failure after it leaves the
 * rest prepared for recovery (which commits them) and returns their groups.
 */
export async function prepareAndCommitInOrder(
  sessions: readonly TxSession[],
  id: string,
): Promise<{ readonly pendingGroups: readonly string[] }> {
  const gids = sessions.map((_, i) => writeGid(id, i, sessions.length));
  let prepared = 0;
  try {
    for (; prepared < sessions.length; prepared++) {
      await run(sessions[prepared]!, `PREPARE TRANSACTION ${quoteLiteral(gids[prepared]!)}`);
    }
  } catch (e) {
    await Promise.all(
      sessions.map((s, i) =>
        s.client
          .query(i < prepared ? `ROLLBACK PREPARED ${quoteLiteral(gids[i]!)}` : 'ROLLBACK')
          .catch(() => undefined),
      ),
    );
    throw e;
  }
  try {
    await sessions[0]!.client.query(`COMMIT PREPARED ${quoteLiteral(gids[0]!)}`);
  } catch (e) {
    // Not decided yet: every group stays prepared, and recovery rolls them back (all present).
    throw new DistributeError(
      '08006',
      `the first commit of a statement on several groups failed; its transactions stay prepared as pgscale:write:${id}:* and are rolled back by recovery`,
      { detail: e instanceof Error ? e.message : String(e), cause: e },
    );
  }
  const pending: string[] = [];
  for (let i = 1; i < sessions.length; i++) {
    const s = sessions[i]!;
    if (pending.length > 0) {
      pending.push(s.group);
      continue;
    }
    try {
      await s.client.query(`COMMIT PREPARED ${quoteLiteral(gids[i]!)}`);
    } catch {
      // Decided already (the first committed): recovery commits this one and the ones after it.
      pending.push(s.group);
    }
  }
  return { pendingGroups: pending };
}
