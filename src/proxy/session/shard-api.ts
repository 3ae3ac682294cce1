/**
 * The Citus API calls inside a sharded session (ShardSteps, shard-steps.ts): a call sent as a
 * Query, or in the extended protocol (an unnamed Parse with its Bind, Describe, Execute and Sync
 * as pgjdbc sends it; a named statement as postgres.js and node-postgres prepare it, answered
 * here and run when bound), is run by the sharding host outside any transaction; a Describe of
 * such a named statement is answered here.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { decodeDescribe } from '../../protocol/frontend-messages.js';
import { encodeBackendMessage } from '../../protocol/backend-messages.js';
import { SqlState } from '../../protocol/sqlstate.js';
import { apiCallOf } from '../../sharding/api-call.js';
import { renameParse } from '../rewrite.js';
import { extendedReplies, hostBatch } from './host-extended.js';
import { withParams } from './shard-extended.js';
import type { SessionSharding } from './shard-target.js';
import type { ShardSession } from './shard-steps.js';
import { protocolStatementName } from './statement-names.js';
import { tagOf } from './statement-risk.js';

const PARSE_COMPLETE = encodeBackendMessage({ name: 'ParseComplete' });
const TYPE_OIDS = { void: 2278, bigint: 20, text: 25 } as const;
const API_EXTENDED =
  'a sharding function (create_distributed_table …) runs in the extended protocol as an unnamed Parse, Bind, Describe, Execute and Sync';
const API_IN_TX = 'the sharding functions (create_distributed_table …) cannot run inside a transaction block';

/** What the step modules (shard-api.ts, shard-placement.ts) use of the session's ShardSteps. */
export interface StepHost {
  readonly s: ShardSession;
  readonly sharding: SessionSharding;
  /** The text of the client's unnamed statement (its Binds are routed by it). */
  unnamedText: string | null;
  refuse(f: TypedFrame, sqlstate: string, message: string): 'next' | 'wait';
  searchPath(): string | undefined;
  /** The text of the statement Bind `f` names (boundText, decoded once per message), or null. */
  boundText(f: TypedFrame): string | null;
  /** `text` (a Bind's) is a Citus API call (sharding.isApi, remembered per text). */
  isApiText(text: string): boolean;
}

/**
 * A Citus API call: run by the sharding host, outside any transaction. A Query, or in the
 * extended protocol an unnamed Parse of it with its Bind, Describe, Execute and Sync (pgjdbc),
 * its Bind parameters written into the call as literals.
 */
export function apiStep(x: StepHost, f: TypedFrame): 'go' | 'next' | 'wait' {
  let text: string;
  if (f.type === 'Q') {
    const q = x.s.queryOf(f);
    if (!q.ok) return 'go';
    text = q.value.query;
  } else if (f.type === 'P') {
    const p = x.s.record.parseOf(f, x.s.analyzer);
    if (!p.ok) return 'go';
    // The unnamed statement's text is always tracked: its Binds are routed by it.
    if (p.value.statement === '') x.unnamedText = p.value.query;
    if (!x.sharding.isApi(p.value.query)) return 'go';
    text = p.value.query;
    if (p.value.statement !== '') {
      // A named statement of the call (postgres.js, a named node-postgres query): prepared here,
      // described here, run when bound (below).
      rememberStatement(x.s, p.value.statement, f);
      x.s.inbox.shift();
      x.s.replyInOrder(PARSE_COMPLETE);
      return 'next';
    }
  } else if (f.type === 'B') {
    const bound = x.boundText(f);
    if (bound === null || !x.isApiText(bound)) return 'go';
    text = bound;
  } else if (f.type === 'D') {
    return describeApi(x, f);
  } else return 'go';
  // A Parse's and a Bind's text were checked above.
  if (f.type === 'Q' && !x.sharding.isApi(text)) return 'go';
  const leg = x.s.leg;
  if (x.s.tx.status !== 'I' || (leg !== null && !leg.idle)) {
    return x.refuse(f, SqlState.ACTIVE_SQL_TRANSACTION, API_IN_TX);
  }
  if (f.type === 'Q') {
    x.s.inbox.shift();
    x.s.waitFor(x.sharding.api(text, x.searchPath()));
    return 'next';
  }
  const batch = hostBatch(x.s.inbox);
  if (batch === 'wait') return 'wait';
  if ('refused' in batch)
    return x.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, `${API_EXTENDED} (${batch.refused})`);
  x.s.inbox.splice(0, batch.count);
  x.s.waitFor(
    x.sharding.api(withParams(text, batch.params), x.searchPath()).then((r) => extendedReplies(batch, r)),
  );
  return 'next';
}

/** A Describe of a named API statement prepared here: its parameters (text) and result column. */
function describeApi(x: StepHost, f: TypedFrame): 'go' | 'next' {
  const d = decodeDescribe(f.payload);
  if (!d.ok || d.value.target !== 'statement' || d.value.targetName === '') return 'go';
  const text = x.s.record.statements.get(d.value.targetName)?.text;
  if (text === undefined || !x.sharding.isApi(text)) return 'go';
  const n = Math.max(0, ...[...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
  const parsed = apiCallOf(withParams(text, new Array<string>(n).fill('x')));
  // A call the parser cannot read fully yet (its arguments come at Bind): named by its function.
  const fn = /\bselect\s+(?:[a-z_]+\.)?([a-z_][a-z0-9_]*)\s*\(/i.exec(text)?.[1]?.toLowerCase();
  const call = parsed?.ok
    ? parsed
    : fn === undefined
      ? null
      : { ok: true as const, call: { column: fn, returns: 'text' as const } };
  x.s.inbox.shift();
  x.s.replyInOrder(
    encodeBackendMessage({ name: 'ParameterDescription', typeOids: new Array<number>(n).fill(25) }),
  );
  if (call !== null) {
    x.s.replyInOrder(
      encodeBackendMessage({
        name: 'RowDescription',
        fields: [
          {
            name: call.call.column,
            tableOid: 0,
            columnAttr: 0,
            typeOid: TYPE_OIDS[call.call.returns],
            typeSize: call.call.returns === 'bigint' ? 8 : call.call.returns === 'void' ? 4 : -1,
            typeModifier: -1,
            format: 0,
          },
        ],
      }),
    );
  } else x.s.replyInOrder(encodeBackendMessage({ name: 'NoData' }));
  return 'next';
}

/** A named statement Parse `f` made without a server: the record knows it (re-prepared where bound). */
export function rememberStatement(s: ShardSession, name: string, f: TypedFrame): void {
  const p = s.record.parseOf(f, s.analyzer);
  if (!p.ok) return;
  const serverName = protocolStatementName(p.value.query, p.value.paramTypes, tagOf(s, p.value.query));
  const facts = p.value.facts;
  s.record.ownStatements().set(name, {
    serverName,
    parse: renameParse(f.payload, serverName),
    effects: [],
    risk: facts.risk,
    ddl: facts.ddl,
    seq: facts.sequenceCall,
    cls: 'write',
    text: p.value.query,
  });
}
