/**
 * Extended-protocol messages (and the rest of the frontend's) on their way to a server: Parse
 * names a statement after its text on the server (statement-names.ts) and is answered at once when
 * the connection already holds it; Bind and Describe parse it first where it is missing; Close of a
 * named statement only forgets the client's name; Execute applies the SET/RESET effects of its
 * portal. What may need a session-state check or a sequence reset is noted at Bind, when the
 * statement runs.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { bindNames, decodeClose, decodeDescribe } from '../../protocol/frontend-messages.js';
import { buildErrorResponse } from '../../protocol/error-response.js';
import { SqlState } from '../../protocol/sqlstate.js';
import { decodeText } from '../../protocol/sql-text.js';
import type { SessionEffect } from '../../sql/session-effects.js';
import { CLOSE_COMPLETE, PARSE_COMPLETE, renameBind, renameParse, renameTarget } from '../rewrite.js';
import type { ForwardContext } from './context.js';
import type { ServerLeg } from './server-leg.js';
import { pendingQuery } from './pending.js';
import {
  LISTS_STATEMENTS_REASON,
  SQL_NAMES_IN_USER_CODE,
  ensurePrepared,
  evictIfFull,
  ownSqlNames,
  reparseUnnamed,
  restoreAfterExecute,
} from './server-prep.js';
import { protocolStatementName } from './statement-names.js';
import { SHADOWED, shadowsBuiltins, tagOf, writesSequenceRelation } from './statement-risk.js';

const NO_BYTES = Buffer.alloc(0);
/** No effects to track (shared; the arrays of effects are only ever read or replaced). */
const NO_TRACKED: SessionEffect[] = [];

/** Every frontend message but Query, on the attached leg. */
export function forwardMessage(ctx: ForwardContext, leg: ServerLeg, f: TypedFrame): void {
  switch (f.type) {
    case 'P':
      return forwardParse(ctx, leg, f);
    case 'B':
      return forwardBind(ctx, leg, f);
    case 'D': {
      const d = decodeDescribe(f.payload);
      const statement = d.ok && d.value.target === 'statement';
      if (statement && d.value.targetName === '') reparseUnnamed(ctx.record, leg);
      if (d.ok && statement && d.value.targetName !== '') {
        const name = ensurePrepared(ctx, leg, d.value.targetName);
        if (name) {
          leg.send(renameTarget('D', name));
          leg.expect({ k: 'describe', statement, sawDescription: false });
          return;
        }
      }
      leg.sendFrame(f);
      leg.expect({ k: 'describe', statement, sawDescription: false });
      return;
    }
    case 'C':
      return forwardClose(ctx, leg, f);
    case 'E': {
      const r = ctx.record;
      let eff: SessionEffect[] | undefined;
      if (r.portalEffects.size > 0) {
        const portal = decodeText(f.payload.subarray(0, Math.max(0, f.payload.indexOf(0))));
        eff = r.portalEffects.get(portal);
        if (eff) ctx.tx.settings.push(...eff);
      }
      leg.sendFrame(f);
      leg.expect(EXECUTE);
      if (eff) restoreAfterExecute(ctx, leg, eff);
      return;
    }
    case 'S':
      leg.sendFrame(f);
      // PostgreSQL ignores Sync during COPY IN from an extended-protocol Execute.
      if (!leg.copyIn) leg.expect(SYNC);
      return;
    case 'H':
    case 'd':
      leg.sendFrame(f);
      return;
    case 'c':
    case 'f':
      leg.sendFrame(f);
      leg.expect({ k: 'copy-end' });
      return;
    case 'F':
      // A fast-path function call runs whatever function the client names.
      ctx.tx.checkCause ??= 'FunctionCall message';
      leg.sendFrame(f);
      leg.expect(pendingQuery(false, ctx.tx.status !== 'I'));
      return;
    default:
      ctx.terminate(
        buildErrorResponse('FATAL', SqlState.PROTOCOL_VIOLATION, `invalid frontend message type "${f.type}"`),
      );
  }
}

function forwardBind(ctx: ForwardContext, leg: ServerLeg, f: TypedFrame): void {
  const { record, tx } = ctx;
  // The names only: the parameters are the server's to read (a malformed Bind is its to refuse).
  const b = bindNames(f.chunk, f.start + 5, f.end);
  if (b !== null) {
    const named = b.statement !== '';
    const st = named ? record.statements.get(b.statement) : undefined;
    const eff = named ? (st?.effects ?? []) : record.unnamedEffects;
    if (eff.length > 0) record.ownPortalEffects().set(b.portal, eff);
    else if (record.portalEffects.size > 0) record.ownPortalEffects().delete(b.portal);
    const risk = named ? (st?.risk ?? null) : record.unnamedRisk;
    const hidden = ctx.opts.hiddenCode;
    if (hidden && (named ? st?.ddl : record.unnamedDdl)) tx.ddlInTx = true;
    if (tx.checkCause === null && !record.pinned) {
      // The text is needed only when some relation of the database hides code.
      const text =
        hidden && (tx.ddlInTx || !hidden.empty)
          ? named
            ? record.statementText(b.statement)
            : record.unnamedText
          : '';
      tx.checkCause =
        risk ??
        (text ? hidden!.riskOfText(text, tx.ddlInTx) : null) ??
        (shadowsBuiltins(ctx) ? SHADOWED : null);
    }
    if (!tx.seqDirty && !record.pinned) {
      if (named ? st?.seq : record.unnamedSeq) tx.seqDirty = true;
      else if (hidden?.mayHaveSequences)
        tx.seqDirty = writesSequenceRelation(
          ctx,
          named ? record.statementText(b.statement) : record.unnamedText,
        );
    }
    if (!named) {
      reparseUnnamed(record, leg);
      record.unnamedFrame = null;
    } else {
      const name = ensurePrepared(ctx, leg, b.statement);
      if (name) {
        leg.send(renameBind(f.chunk, name, f.start + 5, f.end));
        leg.expect(BIND);
        return;
      }
    }
  }
  leg.sendFrame(f);
  leg.expect(BIND);
}

function forwardClose(ctx: ForwardContext, leg: ServerLeg, f: TypedFrame): void {
  const c = decodeClose(f.payload);
  if (c.ok && c.value.target === 'statement' && c.value.targetName !== '') {
    const statements = ctx.record;
    if (ctx.opts.mode === 'session') {
      // The client's own connection: the name is the server's.
      if (statements.statements.has(c.value.targetName))
        statements.ownStatements().delete(c.value.targetName);
      leg.sendFrame(f);
      leg.expect({ k: 'close', swallow: false });
      return;
    }
    // Server statements are shared by text; the client's name just goes away.
    statements.ownStatements().delete(c.value.targetName);
    leg.synthetic(CLOSE_COMPLETE);
    return;
  }
  leg.sendFrame(f);
  leg.expect({ k: 'close', swallow: false });
}

function forwardParse(ctx: ForwardContext, leg: ServerLeg, f: TypedFrame): void {
  const { record, tx } = ctx;
  const p = record.parseOf(f, ctx.analyzer);
  if (!p.ok) {
    ctx.terminate(buildErrorResponse('FATAL', p.sqlstate, p.message));
    return;
  }
  const server = leg.server!;
  const { query, facts } = p.value;
  const effects = extendedEffects(ctx, facts.effects);
  if (!record.sqlOwnNames) {
    // A text that may reach the client's renamed SQL statements by their own names.
    if (!record.pinned && record.sqlStatements.size > 0 && facts.runsUserCode)
      ctx.pin(SQL_NAMES_IN_USER_CODE);
    if (!record.pinned && facts.listsStatements) ctx.pin(LISTS_STATEMENTS_REASON);
    if (record.pinned) ownSqlNames(record, leg);
  }
  const risk = record.pinned ? null : facts.risk;
  if (p.value.statement === '') {
    record.unnamedEffects = effects;
    record.unnamedRisk = risk;
    const hidden = ctx.opts.hiddenCode;
    record.unnamedDdl = hidden ? facts.ddl : false;
    record.unnamedSeq = facts.sequenceCall;
    record.unnamedText =
      hidden && (record.unnamedDdl || tx.ddlInTx || !hidden.empty || hidden.mayHaveSequences) ? query : '';
    // Kept in both modes: a Query of the proxy's own (a commit position) may destroy it on this
    // very connection, and psql describes it in a round trip of its own (ownQueryDestroysUnnamed).
    record.unnamedFrame = f;
    record.unnamedSaved = null;
    leg.unnamedHere = true;
    leg.sendFrame(f);
    leg.expect(PARSE_UNNAMED);
    return;
  }
  if (ctx.opts.mode === 'session') {
    // The client owns its connection: its names are the server's, and a second Parse of a name
    // gets PostgreSQL's own 42P05. Only the effects are kept (a SET run through a portal).
    const name = p.value.statement;
    if (!record.statements.has(name))
      record.ownStatements().set(name, {
        serverName: name,
        parse: NO_BYTES,
        text: p.value.query,
        effects,
        risk: null,
        ddl: false,
        seq: false,
        cls: 'write',
      });
    leg.sendFrame(f);
    leg.expect(PARSE_UNNAMED);
    return;
  }
  const serverName = protocolStatementName(query, p.value.paramTypes, tagOf(ctx, query));
  const parse = renameParse(f.payload, serverName);
  record.ownStatements().set(p.value.statement, {
    serverName,
    parse,
    effects,
    risk,
    ddl: facts.ddl,
    seq: facts.sequenceCall,
    cls: ctx.classOf(f),
  });
  if (server.prepared.has(serverName)) {
    server.prepared.delete(serverName);
    server.prepared.set(serverName, true); // most recently used
    leg.synthetic(PARSE_COMPLETE);
    return;
  }
  evictIfFull(ctx, leg);
  server.prepared.set(serverName, true);
  leg.send(parse);
  leg.expect({ k: 'parse', swallow: false, serverName });
}

/** What a Parse forwarded as it is expects (shared: a pending entry is never changed). */
const PARSE_UNNAMED = Object.freeze({ k: 'parse', swallow: false, serverName: null } as const);
const BIND = Object.freeze({ k: 'bind' } as const);
const EXECUTE = Object.freeze({ k: 'execute' } as const);
const SYNC = Object.freeze({ k: 'sync' } as const);

/**
 * Session effects of an extended-protocol statement. SET/RESET are replayed like simple-protocol
 * ones (once executed); LISTEN and untrackable state pin the connection right away, since the
 * reply of a Parse cannot be faked into a fan-out subscription.
 */
export function extendedEffects(ctx: ForwardContext, effects: readonly SessionEffect[]): SessionEffect[] {
  if (effects.length === 0) return NO_TRACKED;
  const tracked: SessionEffect[] = [];
  for (const e of effects) {
    if (e.kind === 'set' || e.kind === 'reset' || e.kind === 'reset_all') tracked.push(e);
    // SET LOCAL search_path: the shard planner follows it until the transaction ends.
    else if (e.kind === 'local' && e.searchPath !== undefined) tracked.push(e);
    else if (e.kind === 'sticky') ctx.pin(e.reason);
    else if (e.kind === 'listen') ctx.pin('LISTEN (extended protocol)');
    else if (e.kind === 'execute' && ctx.record.sqlStatements.has(e.name))
      ctx.pin('EXECUTE of an SQL prepared statement (extended protocol)');
    else if (e.kind === 'prepare' || e.kind === 'deallocate' || (e.kind === 'discard' && e.what === 'all')) {
      ctx.pin(`${e.kind.toUpperCase()} (extended protocol)`);
      // DISCARD ALL resets every setting too: to the client's start-up values (restoreAfterExecute).
      if (e.kind === 'discard') tracked.push({ kind: 'reset_all' });
    }
  }
  return tracked;
}
