/**
 * Sharding inside a session: the group a client message must run on when its database has
 * distributed or reference tables. The statement's text is planned once per text and catalog
 * version (by the SessionSharding the proxy gives the session, src/proxy/sharding.ts) and resolved
 * with the Bind's parameters: a Query by its literals, a Parse by the Bind that follows it in the
 * same batch (drivers send Parse, Bind, Describe, Execute, Sync together), a Bind by its
 * statement's text and its parameters. Describe, Execute, Close, Sync and Flush follow the leg
 * their statement or portal is on.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { bindNames, decodeParse } from '../../protocol/frontend-messages.js';
import type { EveryGroupWork } from '../../sharding/every-group.js';
import { VALUE_SETTINGS } from '../../sharding/scatter-run.js';
import { hostBatch } from './host-extended.js';
import type { CopyInStart, CopyInWork } from '../../sharding/copy-in.js';
import type { ColumnValue } from '../../sharding/types.js';
import type { Pool } from '../backend/pool.js';
import type { ClientRecord } from './client-record.js';
import type { ExplainNote } from './explain-note.js';
import type { ShardHold } from '../shard-hold.js';
import type { TxDecider } from './multi-group.js';

/** Where a statement's shards are. */
export type ShardTarget =
  /** Nothing sharded in it: the database's own group (group 0), as without sharding. */
  | { readonly kind: 'home' }
  /** Every shard it touches is on this group. */
  | { readonly kind: 'group'; readonly group: string }
  /** Reference tables only (a copy on every group): wherever the session is. */
  | { readonly kind: 'any' }
  /** Its shards are not known before its parameters are (a Parse without its Bind yet). */
  | { readonly kind: 'needs-params' }
  /**
   * Several groups at once (DDL on catalog tables, writes to reference tables, a multi-row INSERT
   * split by group): run by the sharding host with two-phase commit, outside transaction blocks.
   */
  | {
      readonly kind: 'host';
      readonly reason: string;
      readonly work: EveryGroupWork;
      /** A read the host can do fast (scatter): what answers it instead inside a transaction block. */
      readonly general?: ShardTarget;
    }
  /**
   * COPY … FROM STDIN into a distributed or reference table: the host cuts the client's data into
   * rows and streams each to its group (sharding/copy-in.ts), outside transaction blocks.
   */
  | { readonly kind: 'copy'; readonly reason: string; readonly work: CopyInWork }
  /**
   * A read that needs several groups: group 0 runs `text` (the statement with its distributed
   * tables renamed to their global tables) in place of the client's.
   */
  | { readonly kind: 'global'; readonly text: string }
  /** Its shards are held for a move's cutover (shard-hold.ts): routed again once released. */
  | { readonly kind: 'held'; readonly hold: ShardHold }
  /** Not possible here: answered with this error (0A000 when it needs what is not built yet). */
  | { readonly kind: 'refuse'; readonly sqlstate: string; readonly message: string };

/** What a session of a sharded database is given by the proxy. */
export interface SessionSharding {
  /** The catalog holds tables: anything to plan at all (false: the session routes as before). */
  readonly active: boolean;
  /**
   * Where `sql` runs with these parameters (null: not known yet), unqualified names looked up
   * with the session's search_path `searchPath` (its SQL text; undefined: the default).
   */
  target(sql: string, params: readonly (ColumnValue | null)[] | null, searchPath?: string): ShardTarget;
  /** The primary pool of `group` for this session's database and user. */
  poolOf(group: string): Pool;
  /** `sql` is a Citus API call (create_distributed_table …) the proxy answers. */
  isApi(sql: string): boolean;
  /** Runs the API call `sql`: its replies, ending with ReadyForQuery (errors are replies too). */
  api(sql: string, searchPath?: string): Promise<Buffer[]>;
  /** Runs a statement on several groups (a 'host' target): its replies, ending with ReadyForQuery 'I'. */
  host(work: EveryGroupWork): Promise<Buffer[]>;
  /** Starts a COPY split by row (a 'copy' target). */
  copyIn(work: CopyInWork): Promise<CopyInStart>;
  /** The route EXPLAIN `sql` shows with these parameters (shard-explain.ts), or null. */
  explain?(sql: string, params: readonly (ColumnValue | null)[]): ExplainNote | null;
  /** Records the decisions of transactions that wrote on several groups (null: none may). */
  readonly decider?: TxDecider | null;
}

/**
 * A fast read (fastOrGeneral) that must go the general way all the same: a Parse without its
 * Bind (prepared alone, as postgres.js does: the general path's text is prepared on group 0, and
 * its later Binds come back to the fast path by that text), or an extended-protocol batch the
 * host does not take (host-extended.ts: a row limit, binary results, more than one statement).
 */
export function generalFor(f: TypedFrame, inbox: readonly TypedFrame[], bindFollows: boolean): boolean {
  if (f.type === 'Q') return false;
  if (f.type === 'P' && !bindFollows) return true;
  const b = hostBatch(inbox);
  return b !== 'wait' && 'refused' in b;
}

/**
 * A read the host can do fast (a 'host' target with a `general` one): inside a transaction block
 * (`inTx`), or for a client whose values would not pass between the host's sessions as its own
 * (an encoding other than UTF8, floats printed rounded), the general path; else the fast path
 * with the client's settings that change how values read and print.
 */
export function fastOrGeneral(
  t: Extract<ShardTarget, { kind: 'host' }>,
  inTx: boolean,
  settings: ReadonlyMap<string, string>,
): ShardTarget {
  if (t.general === undefined || t.work.kind !== 'scatter') return t;
  if (inTx) return t.general;
  const kept: [string, string][] = [];
  for (const [k, v] of settings) {
    const name = k.toLowerCase();
    if (name === 'client_encoding' && !/^(utf-?8|sql_ascii)$/i.test(v.replace(/'/g, ''))) return t.general;
    if (name === 'extra_float_digits' && !(Number(v) > 0)) return t.general;
    // The host runs as the login user: a session that changed its role reads on its own connection.
    if (name === 'role' || name === 'session_authorization') return t.general;
    const known = VALUE_SETTINGS.find((x) => x.toLowerCase() === name);
    if (known === undefined) continue;
    // Replayed as `SET LOCAL name TO value` on the host's sessions: plain values and literals only.
    if (!SETTING_VALUE.test(v)) return t.general;
    kept.push([known, v]);
  }
  return kept.length === 0 ? t : { ...t, work: { ...t.work, settings: kept } };
}

/** A setting's value as SQL text: quoted literals, words and numbers, comma-separated. */
const SETTING_VALUE =
  /^(?:'(?:[^'\\]|'')*'|[A-Za-z0-9_.+-]+)(?:\s*,\s*(?:'(?:[^'\\]|'')*'|[A-Za-z0-9_.+-]+))*$/;

export const HOME: ShardTarget = { kind: 'home' };
export const ANY: ShardTarget = { kind: 'any' };

/**
 * The parameters of a Bind as the planner takes them (text or binary, by the Bind's format
 * codes); null for a Bind that is malformed (decodeBind's rules) or a piece of one. Read in place
 * from the frame's chunk: it runs for every Bind of a sharded session, and decodeBind's views of
 * the names and values were most of its cost.
 */
export function bindParams(f: TypedFrame): (ColumnValue | null)[] | null {
  if (f.partial === true) return null;
  const buf = f.chunk;
  const end = f.end;
  // The portal's and the statement's names (C strings).
  let z = buf.indexOf(0, f.start + 5);
  if (z < 0 || z >= end) return null;
  z = buf.indexOf(0, z + 1);
  if (z < 0 || z >= end) return null;
  let pos = z + 1;
  if (pos + 2 > end) return null;
  const nf = buf.readUInt16BE(pos);
  const formats = pos + 2;
  pos = formats + 2 * nf;
  if (pos + 2 > end) return null;
  const np = buf.readUInt16BE(pos);
  pos += 2;
  if (nf > 1 && nf !== np) return null;
  const out: (ColumnValue | null)[] = new Array<ColumnValue | null>(np);
  for (let i = 0; i < np; i++) {
    if (pos + 4 > end) return null;
    const len = buf.readInt32BE(pos);
    pos += 4;
    if (len === -1) {
      out[i] = null;
      continue;
    }
    if (len < 0 || pos + len > end) return null;
    const format = nf === 0 ? 0 : buf.readInt16BE(formats + (nf === 1 ? 0 : 2 * i));
    out[i] =
      format === 1
        ? { format: 'binary', bytes: buf.subarray(pos, pos + len) }
        : { format: 'text', text: buf.toString('utf8', pos, pos + len) };
    pos += len;
  }
  if (pos + 2 > end) return null;
  pos += 2 + 2 * buf.readUInt16BE(pos);
  return pos === end ? out : null;
}

/** The text of the statement a Bind names, from the client's record (null: unknown). */
export function boundText(record: ClientRecord, f: TypedFrame, unnamedText: string | null): string | null {
  const names = bindNames(f.chunk, f.start + 5, f.end);
  if (names === null) return null;
  if (names.statement === '') return unnamedText;
  const st = record.statements.get(names.statement);
  if (st === undefined) return null;
  if (st.text === undefined) {
    const p = decodeParse(st.parse.subarray(5));
    if (!p.ok) return null;
    st.text = p.value.query;
  }
  return st.text;
}

/** The Bind of statement `name` among the messages queued after a Parse (before another Parse of it). */
export function bindAfter(inbox: readonly TypedFrame[], from: number, name: string): TypedFrame | null {
  for (let i = from; i < inbox.length; i++) {
    const f = inbox[i]!;
    if (f.type === 'P') {
      const p = decodeParse(f.payload);
      if (p.ok && p.value.statement === name) return null;
    } else if (f.type === 'B') {
      const names = bindNames(f.chunk, f.start + 5, f.end);
      if (names !== null && names.statement === name) return f;
    } else if (f.type === 'S' || f.type === 'Q') {
      return null;
    }
  }
  return null;
}
