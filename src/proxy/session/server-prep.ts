/**
 * Making a server connection fit for the client about to use it, in the same round trip as the
 * client's own messages: its session settings replayed, its prepared statements parsed again,
 * the start-up values restored after a RESET, statements evicted when the connection holds too
 * many, and the proxy's own queries (commit position, session-state check). Each queues bytes on
 * a leg and the replies it expects, swallowed.
 */
import { runsUserCode } from '../../sql/session-safety.js';
import type { SessionEffect } from '../../sql/session-effects.js';
import { LARGE_MESSAGE_BYTES } from '../frontend/message-budget.js';
import { quoteSettingName, stateCheckQuery } from '../backend/state-check.js';
import type { CommitHorizon } from '../commit-horizon.js';
import { restoreStatements, restoreValue } from '../reset-rewrite.js';
import { queryMessage, renameTarget } from '../rewrite.js';
import { EMPTY_MAP, sameSettings } from './client-record.js';
import type { ClientRecord } from './client-record.js';
import type { ForwardContext } from './context.js';
import { ownQuery, pendingQuery } from './pending.js';
import type { SqlOp } from './pending.js';
import type { ServerLeg } from './server-leg.js';
import { LISTS_STATEMENTS, plainText } from './text-facts.js';

const quoteName = quoteSettingName;

export const SQL_NAMES_IN_USER_CODE =
  'user code after SQL PREPARE (its dynamic SQL may use the prepared names)';
export const LISTS_STATEMENTS_REASON = "pg_prepared_statements (lists the session's own prepared statements)";

/** Replays the client's session settings on a connection that holds other ones. */
export function syncSettings(record: ClientRecord, leg: ServerLeg): void {
  const server = leg.server!;
  const settings = record.settings;
  if (sameSettings(server.settings, settings)) return; // the usual case: nothing to send
  const stmts: string[] = [];
  for (const k of server.settings.keys()) {
    if (!settings.has(k)) stmts.push(`RESET ${quoteName(k)}`);
  }
  for (const [k, v] of settings) {
    if (server.settings.get(k) !== v) stmts.push(`SET ${quoteName(k)} = ${v}`);
  }
  if (stmts.length === 0) return;
  server.settings = settings;
  // The server reads a Query in the encoding in force when it arrives: the client's encoding
  // goes first, alone, so that the values after it are read as the client wrote them.
  const enc = stmts.findIndex((x) => /^(SET|RESET) "?client_encoding\b/.test(x));
  if (enc >= 0 && stmts.length > 1) {
    leg.send(queryMessage(stmts.splice(enc, 1)[0]!));
    leg.expect(ownQuery());
  }
  leg.send(queryMessage(stmts.join('; ')));
  leg.expect(ownQuery());
}

/**
 * A Query of the proxy's own (a commit position, start-up values, a state check) destroys the
 * client's unnamed statement on the server: parse it again if the client still uses it (psql's
 * `\gdesc` describes it in a round trip of its own, after such a Query may have run).
 */
export function ownQueryDestroysUnnamed(record: ClientRecord, leg: ServerLeg): void {
  record.saveUnnamed(LARGE_MESSAGE_BYTES);
  leg.unnamedHere = false;
}

/** Parses the client's unnamed statement again on a connection that does not hold it. */
export function reparseUnnamed(record: ClientRecord, leg: ServerLeg): void {
  if (leg.unnamedHere || record.unnamedSaved === null) return;
  leg.unnamedHere = true;
  leg.send(record.unnamedSaved);
  leg.expect({ k: 'parse', swallow: true, serverName: null });
}

/**
 * Gives the attached connection the client's start-up values right behind a DISCARD ALL or an
 * extended-protocol RESET (reset-rewrite.ts), in the same round trip; the replies are swallowed.
 */
export function sendRestore(ctx: ForwardContext, leg: ServerLeg, names?: readonly string[]): void {
  const startup = ctx.opts.startupSettings;
  let stmts: string[];
  if (names) {
    stmts = [];
    for (const n of names) {
      const v = restoreValue(startup, n);
      if (v !== undefined) stmts.push(`SET ${quoteName(n)} TO ${v}`);
    }
  } else stmts = restoreStatements(startup);
  if (stmts.length === 0) return;
  ownQueryDestroysUnnamed(ctx.record, leg);
  // The encoding goes alone, first: the server reads a Query in the encoding in force on arrival.
  if (stmts.length > 1 && stmts[0]!.startsWith('SET client_encoding')) {
    leg.send(queryMessage(stmts.shift()!));
    leg.expect(ownQuery());
  }
  leg.send(queryMessage(stmts.join('; ')));
  leg.expect(ownQuery());
}

/**
 * An extended-protocol RESET cannot be rewritten into several statements: the start-up values
 * follow its Execute as a Query, before the client's Sync. If the Execute fails, the server skips
 * that Query with everything else up to the Sync (the leg drops its entry too). A Query ends the
 * implicit transaction of the messages before it, so in a pipeline without BEGIN the statements
 * before the RESET are committed at that point rather than at the Sync.
 */
export function restoreAfterExecute(
  ctx: ForwardContext,
  leg: ServerLeg,
  eff: readonly SessionEffect[],
): void {
  if (eff.some((e) => e.kind === 'reset_all')) {
    ctx.record.resetProxySettings();
    return sendRestore(ctx, leg);
  }
  const names: string[] = [];
  for (const e of eff) if (e.kind === 'reset') names.push(e.name);
  if (names.length > 0) sendRestore(ctx, leg, names);
}

/** Makes sure the attached connection holds the client's statement; returns its server name. */
export function ensurePrepared(ctx: ForwardContext, leg: ServerLeg, clientName: string): string | null {
  if (ctx.opts.mode === 'session') return null; // the client's names are the server's
  const st = ctx.record.statements.get(clientName);
  if (!st) return null; // unknown to us: the server will report 26000 itself
  const server = leg.server!;
  if (server.prepared.has(st.serverName)) return st.serverName;
  evictIfFull(ctx, leg);
  server.prepared.set(st.serverName, true);
  leg.send(st.parse);
  leg.expect({ k: 'parse', swallow: true, serverName: st.serverName });
  return st.serverName;
}

export function ensureSqlPrepared(ctx: ForwardContext, leg: ServerLeg, clientName: string): boolean {
  const st = ctx.record.sqlStatements.get(clientName);
  if (!st) return false;
  const server = leg.server!;
  if (!server.prepared.has(st.serverName)) {
    server.prepared.set(st.serverName, true);
    leg.send(queryMessage(st.prepare));
    leg.expect(ownQuery());
  }
  return true;
}

export function evictIfFull(ctx: ForwardContext, leg: ServerLeg): void {
  const max = ctx.opts.maxPreparedStatements;
  if (max <= 0) return;
  const server = leg.server!;
  while (server.prepared.size >= max) {
    const oldest = server.prepared.keys().next().value as string;
    server.prepared.delete(oldest);
    if (oldest.startsWith('pgscale_s_')) {
      leg.send(queryMessage(`DEALLOCATE ${oldest}`));
      leg.expect(ownQuery());
    } else {
      leg.send(renameTarget('C', oldest));
      leg.expect({ k: 'close', swallow: true });
    }
  }
}

/**
 * Pins the client before a text the renaming cannot stay invisible to: state that pins anyway,
 * or user code (a DO block, a function, CALL) that may name one of its SQL prepared statements
 * in dynamic SQL, where the proxy cannot rename. A pinned client's statements then get their
 * own names on its connection (ownSqlNames).
 */
export function pinForSqlNames(
  ctx: ForwardContext,
  leg: ServerLeg,
  sql: string,
  effects: readonly SessionEffect[],
): void {
  const r = ctx.record;
  if (!r.pinned) {
    for (const e of effects) {
      if (e.kind === 'sticky') ctx.pin(e.reason);
      else if (e.kind === 'listen') ctx.pin('LISTEN');
    }
    if (!r.pinned && r.sqlStatements.size > 0 && !plainText(sql) && runsUserCode(sql))
      ctx.pin(SQL_NAMES_IN_USER_CODE);
    if (!r.pinned && !plainText(sql) && LISTS_STATEMENTS.test(sql)) ctx.pin(LISTS_STATEMENTS_REASON);
  }
  if (r.pinned) ownSqlNames(ctx.record, leg);
}

/**
 * The client is pinned to its connection for good: its SQL prepared statements are prepared there
 * under the names it gave them, and from now on its PREPARE, EXECUTE and DEALLOCATE pass
 * through untouched, as in session mode.
 */
export function ownSqlNames(record: ClientRecord, leg: ServerLeg): void {
  record.sqlOwnNames = true;
  const server = leg.server!;
  let sent = false;
  if (server.prepared.size > 0) {
    // The connection is the client's until its reset: what other clients and the renaming left
    // there goes, so that pg_prepared_statements lists the client's statements once, under its
    // names (its protocol-level ones are parsed again when next used).
    leg.send(queryMessage('DEALLOCATE ALL'));
    leg.expect(ownQuery());
    server.prepared.clear();
    sent = true;
  }
  for (const st of record.sqlStatements.values()) {
    // Alone in its Query: pg_prepared_statements shows the whole text that prepared it.
    leg.send(queryMessage(st.original));
    leg.expect(ownQuery());
    sent = true;
  }
  record.sqlStatements = EMPTY_MAP;
  if (sent) ownQueryDestroysUnnamed(record, leg);
}

/** The statements of `failedAt` and after did not run: their record changes are undone. */
export function undoSqlOps(
  record: ClientRecord,
  leg: ServerLeg,
  ops: readonly SqlOp[],
  failedAt: number,
): void {
  const server = leg.server;
  for (let i = ops.length - 1; i >= 0; i--) {
    const op = ops[i]!;
    if (op.index < failedAt) break;
    if (op.before) record.ownSqlStatements().set(op.name, op.before);
    else if (record.sqlStatements.has(op.name)) record.ownSqlStatements().delete(op.name);
    // A failed PREPARE left no statement (a stale copy was deallocated first); a DEALLOCATE
    // that did not run left it in place.
    if (op.prepare) server?.prepared.delete(op.serverName);
    else server?.prepared.set(op.serverName, true);
  }
}

/**
 * Asks the primary's WAL position after a write transaction, on the same connection before
 * anyone else can use it. Registered with the commit horizon in the same turn of the event loop
 * as the commit's ReadyForQuery is queued for the client: no client can have heard of the commit
 * before a causal read would wait for this answer (CommitHorizon.settled).
 */
export function sendCommitCapture(record: ClientRecord, leg: ServerLeg, horizon: CommitHorizon | null): void {
  ownQueryDestroysUnnamed(record, leg);
  leg.send(queryMessage('SELECT pg_current_wal_lsn()'));
  leg.expect(pendingQuery(true, false, { captureLsn: true, capture: horizon?.beginCapture() ?? 0 }));
}

/**
 * Asks the server what its session holds (src/proxy/backend/state-check.ts) before giving the
 * connection back; the reply decides whether it is pinned to this client. With no cause, only
 * the client's sequence state is dropped (no check; its currval then says 55000).
 */
export function sendStateCheck(record: ClientRecord, leg: ServerLeg, cause: string | null): void {
  const tracked = leg.server!.settings;
  ownQueryDestroysUnnamed(record, leg);
  if (cause === null) {
    leg.send(queryMessage('DISCARD SEQUENCES'));
    leg.expect(pendingQuery(true, false, { check: { rows: [], cause: '', tracked, discardOnly: true } }));
    return;
  }
  leg.pool!.stats.stateChecks++;
  // User code may have called nextval: its sequence state goes too (the check's rows come first).
  leg.send(queryMessage(`${stateCheckQuery(tracked)}; DISCARD SEQUENCES`));
  leg.expect(pendingQuery(true, false, { check: { rows: [], cause, tracked } }));
}
