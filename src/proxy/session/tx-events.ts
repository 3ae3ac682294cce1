/**
 * The transaction's bookkeeping at the replies that end the client's work: a CommandComplete
 * (DISCARD ALL forgets the records, a ROLLBACK noted) and a ReadyForQuery (the
 * transaction's SETs kept or dropped, the hidden-code registry told of DDL, a ROLLBACK TO SAVEPOINT
 * after SET noted for the state check). Whether the connection goes back is the session's call.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { commandCompleteIs } from '../../protocol/backend-messages.js';
import type { TransactionStatus } from '../../protocol/backend-messages.js';
import { sameSettings } from './client-record.js';
import type { ForwardContext } from './context.js';
import type { PendingQuery } from './pending.js';
import type { ServerLeg } from './server-leg.js';

export function onCommandComplete(ctx: ForwardContext, leg: ServerLeg, f: TypedFrame): void {
  const tx = ctx.tx;
  if (tx.discardAllSent && leg.server && commandCompleteIs(f.chunk, 'DISCARD ALL', f.start, f.end)) {
    leg.server.prepared.clear();
    leg.server.settings = new Map();
    ctx.record.forgetStatements();
  }
  // Only this tag matters here; most are SELECT n, INSERT 0 n… and need no decoding.
  const rollback = commandCompleteIs(f.chunk, 'ROLLBACK', f.start, f.end);
  // ROLLBACK TO SAVEPOINT has the same tag: ReadyForQuery tells them apart.
  if (rollback) tx.rolledBack = true;
}

/** ReadyForQuery after the client's own Query (`query`) or Sync (null), with status `status`. */
export function onClientReadyForQuery(
  ctx: ForwardContext,
  leg: ServerLeg,
  status: TransactionStatus,
  query: PendingQuery | null,
): void {
  const { tx, opts } = ctx;
  tx.discardAllSent = false;
  if (status === 'I' && tx.ddlInTx) {
    // The schema may have changed: the registry reloads (fail safe meanwhile).
    tx.ddlInTx = false;
    opts.hiddenCode?.changed();
  }
  if (tx.rolledBack) {
    tx.rolledBack = false;
    if (status === 'I') tx.settings = [];
    else if (tx.settings.length > 0 && !ctx.record.pinned) {
      // ROLLBACK TO SAVEPOINT undid some of this transaction's SETs, which the proxy does not
      // follow: the session-state check compares the record with the server before anyone else
      // gets the connection, and pins the client if they differ.
      tx.checkCause ??= 'ROLLBACK TO SAVEPOINT after SET';
    }
  }
  if (status === 'I') {
    tx.wrote = false;
    tx.localSet = false;
    const failedImplicit = query !== null && query.failed && !query.wasInBlock;
    if (!failedImplicit) commitSettings(ctx, leg);
    // A new array only when the transaction had settings (most have none: no array per transaction).
    if (tx.settings.length > 0) tx.settings = [];
  }
  tx.status = status;
}

function commitSettings(ctx: ForwardContext, leg: ServerLeg): void {
  const settings = ctx.tx.settings;
  const record = ctx.record;
  record.commitSettings(settings, leg.server?.params ?? null);
  // The connection shares the client's map (maps are replaced, never changed): a transaction that
  // changed nothing leaves it as it is, and the next comparison is one identity test.
  const s = leg.server;
  if (s && (settings.length > 0 || !sameSettings(s.settings, record.settings))) s.settings = record.settings;
}
