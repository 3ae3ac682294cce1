/**
 * A simple-protocol Query on its way to a server: its session effects recorded (SET/RESET replayed
 * later, LISTEN and untrackable state pinning), its SQL prepared-statement names renamed to the
 * server's, its RESETs rewritten to restore the client's start-up values, and what may need a
 * session-state check or a sequence reset noted. The text is sent as the client wrote it whenever
 * nothing needs rewriting.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { buildErrorResponse } from '../../protocol/error-response.js';
import { renamePreparedRefsAt } from '../../sql/rename-prepared.js';
import { mayHideEffects } from '../../sql/session-safety.js';
import { refusedEncodingQuery, refusedEncodingSet } from '../client-encoding.js';
import { rewriteResets } from '../reset-rewrite.js';
import { queryMessage } from '../rewrite.js';
import type { ForwardContext } from './context.js';
import { ownQuery, pendingQuery } from './pending.js';
import type { RenamedText, SqlOp } from './pending.js';
import { ensureSqlPrepared, pinForSqlNames, sendRestore } from './server-prep.js';
import type { ServerLeg } from './server-leg.js';
import { renameIn, sqlStatementName } from './statement-names.js';
import { SHADOWED, mayUseSequence, shadowsBuiltins, tagOf } from './statement-risk.js';
import { COMMIT_TEXT, ddlOf, effectsOf, plainText, riskOf } from './text-facts.js';

export function forwardQuery(
  ctx: ForwardContext,
  leg: ServerLeg,
  f: TypedFrame,
  q: { ok: true; value: { query: string } } | { ok: false; sqlstate: string; message: string },
): void {
  if (!q.ok) {
    ctx.terminate(buildErrorResponse('FATAL', q.sqlstate, q.message));
    return;
  }
  const { record, tx } = ctx;
  const server = leg.server!;
  let sql = q.value.query;
  const effects = effectsOf(ctx.analyzer, sql);
  const refused = effects.length === 0 ? null : effects.map(refusedEncodingSet).find((c) => c !== null);
  if (refused) {
    // An encoding the proxy cannot analyse: the server refuses the SET (see client-encoding.ts).
    leg.send(queryMessage(refusedEncodingQuery(refused)));
    leg.expect(pendingQuery(false, tx.status !== 'I'));
    return;
  }
  let restoreAfter = false;
  if (!record.sqlOwnNames) pinForSqlNames(ctx, leg, sql, effects);
  // A simple Query destroys the unnamed statement (PostgreSQL protocol docs, Parse).
  record.unnamedFrame = null;
  record.unnamedSaved = null;
  leg.unnamedHere = false;
  /** Per statement of this text: the server name its prepared-statement name becomes. */
  let renames: (string | undefined)[] | null = null;
  /** Record changes of this text, undone from the statement that fails (undoSqlOps). */
  let ops: SqlOp[] | null = null;
  for (let i = 0; i < effects.length; i++) {
    const e = effects[i]!;
    switch (e.kind) {
      case 'set':
      case 'reset':
        tx.settings.push(e);
        break;
      case 'local':
        // SET LOCAL search_path: the shard planner follows it until the transaction ends.
        if (e.searchPath !== undefined) tx.settings.push(e);
        else tx.localSet = true;
        break;
      case 'reset_all':
        tx.settings.push(e);
        record.resetProxySettings();
        break;
      case 'prepare': {
        if (record.sqlOwnNames) break;
        const known = record.sqlStatements.get(e.name);
        if (known) {
          // The client already has this name: the server says 42P05 for it (renamed back).
          ensureSqlPrepared(ctx, leg, e.name);
          (renames ??= [])[i] = known.serverName;
          break;
        }
        const serverName = sqlStatementName(e.name, e.text, tagOf(ctx, e.text));
        (ops ??= []).push({ index: i, name: e.name, before: undefined, serverName, prepare: true });
        record.ownSqlStatements().set(e.name, {
          serverName,
          prepare: renameIn(e.text, e.name, serverName),
          // The whole Query when it holds only this statement: the server shows that text.
          original: effects.length === 1 ? q.value.query : e.text,
        });
        (renames ??= [])[i] = serverName;
        if (server.prepared.has(serverName)) {
          leg.send(queryMessage(`DEALLOCATE ${serverName}`));
          leg.expect(ownQuery());
        }
        server.prepared.set(serverName, true);
        break;
      }
      case 'execute':
        if (!record.sqlOwnNames && ensureSqlPrepared(ctx, leg, e.name))
          (renames ??= [])[i] = record.sqlStatements.get(e.name)!.serverName;
        break;
      case 'deallocate':
        if (e.name === null) {
          // DEALLOCATE ALL drops protocol-level statements too.
          record.forgetStatements();
          server.prepared.clear();
        } else if (!record.sqlOwnNames) {
          const s = record.sqlStatements.get(e.name);
          if (s && ensureSqlPrepared(ctx, leg, e.name)) {
            (ops ??= []).push({
              index: i,
              name: e.name,
              before: s,
              serverName: s.serverName,
              prepare: false,
            });
            (renames ??= [])[i] = s.serverName;
            server.prepared.delete(s.serverName);
            record.ownSqlStatements().delete(e.name);
          }
        }
        break;
      case 'discard':
        if (e.what === 'all') {
          // Forgotten only once the server says DISCARD ALL ran: inside a transaction block it
          // fails (25001) and the connection keeps every statement (the session's commandComplete).
          tx.discardAllSent = true;
          tx.settings.push({ kind: 'reset_all' });
          record.resetProxySettings();
          restoreAfter = true;
        } else if (e.what === 'sequences') {
          // The client dropped its own sequence state: nothing left to keep for it.
          tx.seqDirty = false;
        }
        break;
      case 'listen':
        ctx.pin('LISTEN');
        break;
      case 'sticky':
        ctx.pin(e.reason);
        break;
      default:
        break;
    }
  }
  const hidden = ctx.opts.hiddenCode;
  if (hidden && ddlOf(ctx.analyzer, sql)) tx.ddlInTx = true;
  if (!record.pinned && tx.checkCause === null) {
    tx.checkCause =
      riskOf(ctx.analyzer, sql) ??
      hidden?.riskOfText(sql, tx.ddlInTx) ??
      (!plainText(sql) && mayHideEffects(sql) && shadowsBuiltins(ctx) ? SHADOWED : null);
  }
  if (!record.pinned && !tx.seqDirty) tx.seqDirty = mayUseSequence(ctx, sql);
  let renamed: RenamedText | undefined;
  if (renames !== null) {
    const r = renamePreparedRefsAt(sql, (_name, i) => renames[i]);
    sql = r.text;
    const names = new Map<string, string>();
    renames.forEach((serverName, i) => {
      const e = effects[i];
      if (serverName !== undefined && e && 'name' in e && e.name !== null) names.set(serverName, e.name);
    });
    renamed = { names, spans: r.spans, ops };
  }
  // RESET restores the client's start-up values, not the server connection's (reset-rewrite.ts).
  // Applied after the renaming, which keeps the statements where they are; the positions of an
  // error in a text doing both are then approximate.
  const resets = rewriteResets(sql, effects, ctx.opts.startupSettings);
  if (resets) sql = resets.sql;
  if (renames !== null || resets) leg.send(queryMessage(sql));
  else leg.sendFrame(f);
  if (tx.status !== 'I' && COMMIT_TEXT.test(sql)) tx.commitInFlight = true;
  leg.expect(
    resets || renamed
      ? pendingQuery(false, tx.status !== 'I', { tags: resets?.tags, renamed })
      : pendingQuery(false, tx.status !== 'I'),
  );
  // DISCARD ALL runs alone (never in a multi-statement text): the start-up values follow it.
  if (restoreAfter) sendRestore(ctx, leg);
}
