/**
 * What the proxy keeps of one client, whichever server connection it holds: its session settings,
 * its prepared statements (protocol-level and SQL), portal effects, the proxy's own settings, the
 * channels it listens on, and whether it is pinned to a connection. Server legs never see it; the
 * session and the message translators (forward-*.ts) read and change it.
 *
 * Per-client maps start as one shared empty map and are made on their first entry: an idle client
 * then costs no map it never uses (10,000 idle clients are a normal sight for a pooler).
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { decodeParse } from '../../protocol/frontend-messages.js';
import type { SessionEffect } from '../../sql/session-effects.js';
import { searchPathShadowsBuiltins } from '../../sql/session-safety.js';
import { committedSettings } from '../settings-record.js';
import type { SqlStatement } from './pending.js';
import { ParseMemo } from './parse-memo.js';
import type { ParseFacts } from './parse-memo.js';
import type { Analyzer } from '../../sql/analyze.js';
import type { Result } from '../../protocol/result.js';
import type { MessageClass } from './route.js';

export interface ClientStatement {
  /** Where its portals may run (classified at Parse, with the hint and pgscale.target then). */
  cls: MessageClass;
  /** SET/RESET effects of the statement's text, applied when a portal of it is executed. */
  effects: SessionEffect[];
  /** Why executing it may change session state the proxy cannot see (then checked), or null. */
  risk: string | null;
  serverName: string;
  /** The Parse message under the server-side name, to re-prepare on another connection. */
  parse: Buffer;
  /** A CREATE, ALTER or DROP: the hidden-code registry reloads after its transaction. */
  ddl: boolean;
  /** Calls nextval or setval in its text (a write to a relation with a sequence is seen at Bind). */
  seq: boolean;
  /** Its text, decoded from `parse` the first time the hidden-code registry needs it. */
  text?: string;
}

/** Shared, empty and read-only (as types say; writing to it would be a bug, so it throws). */
class EmptyMap extends Map<never, never> {
  override set(): this {
    throw new Error('internal error: write to the shared empty map');
  }
}
class EmptySet extends Set<never> {
  override add(): this {
    throw new Error('internal error: write to the shared empty set');
  }
}
export const EMPTY_MAP: ReadonlyMap<never, never> = new EmptyMap();
export const EMPTY_SET: ReadonlySet<never> = new EmptySet();
/** No effects: shared by every client whose unnamed statement has none (frozen: a push throws). */
const NO_EFFECTS = Object.freeze([]) as unknown as SessionEffect[];

export class ClientRecord {
  /** The client's session settings: the start-up packet's own map until the client changes one. */
  settings: ReadonlyMap<string, string>;
  /** The proxy's own settings (pgscale.target, pgscale.consistency): never sent to servers. */
  proxySettings: ReadonlyMap<string, string>;
  statements: ReadonlyMap<string, ClientStatement> = EMPTY_MAP;
  portalEffects: ReadonlyMap<string, SessionEffect[]> = EMPTY_MAP;
  sqlStatements: ReadonlyMap<string, SqlStatement> = EMPTY_MAP;
  channels: ReadonlySet<string> = EMPTY_SET;
  /** Pinned: holds a connection for the whole session (session mode, or untrackable state). */
  pinned: boolean;
  pinReason: string | null = null;
  /**
   * SQL PREPARE names reach the server as the client wrote them: always in session mode (the
   * client owns its connection), and in transaction mode once the client is pinned.
   */
  sqlOwnNames: boolean;
  /** Effects of the unnamed statement (extended protocol SET/RESET). */
  /** The client's last Parse, decoded and analysed (made on its first Parse). */
  private lastParse: ParseMemo | null = null;
  unnamedEffects: SessionEffect[] = NO_EFFECTS;
  unnamedRisk: string | null = null;
  /** The unnamed statement's text, kept only while some relation of the database hides code. */
  unnamedText = '';
  unnamedDdl = false;
  /** The unnamed statement calls nextval or setval. */
  unnamedSeq = false;
  /**
   * The unnamed statement's Parse in this attachment, not yet bound; when the connection goes
   * back unbound (psql's \gdesc: Parse, Sync, then Describe in a second round trip), a copy is
   * kept in unnamedSaved and parsed again on the next connection before a Describe or Bind of it.
   */
  unnamedFrame: TypedFrame | null = null;
  unnamedSaved: Buffer | null = null;
  /** WAL position of this client's last commit on the primary (read-your-writes). */
  wroteLsn: bigint | null = null;
  /** Sharding: the client's last commit position on each other group it wrote to (their own WAL). */
  groupLsns: Map<string, bigint> | null = null;

  constructor(
    readonly startupSettings: ReadonlyMap<string, string>,
    readonly startupProxySettings: ReadonlyMap<string, string> | undefined,
    sessionMode: boolean,
  ) {
    this.settings = startupSettings;
    this.proxySettings = startupProxySettings ?? EMPTY_MAP;
    this.pinned = sessionMode;
    this.sqlOwnNames = sessionMode;
    if (sessionMode) this.pinReason = 'session pool mode';
  }

  /** A Parse message decoded and analysed, once for a run of identical ones (parse-memo.ts). */
  parseOf(f: TypedFrame, analyzer: Analyzer): Result<ParseFacts> {
    return (this.lastParse ??= new ParseMemo()).of(f, analyzer);
  }

  ownStatements(): Map<string, ClientStatement> {
    if (this.statements === EMPTY_MAP) this.statements = new Map();
    return this.statements as Map<string, ClientStatement>;
  }

  ownPortalEffects(): Map<string, SessionEffect[]> {
    if (this.portalEffects === EMPTY_MAP) this.portalEffects = new Map();
    return this.portalEffects as Map<string, SessionEffect[]>;
  }

  ownSqlStatements(): Map<string, SqlStatement> {
    if (this.sqlStatements === EMPTY_MAP) this.sqlStatements = new Map();
    return this.sqlStatements as Map<string, SqlStatement>;
  }

  ownProxySettings(): Map<string, string> {
    if (this.proxySettings === EMPTY_MAP || this.proxySettings === this.startupProxySettings)
      this.proxySettings = new Map(this.proxySettings);
    return this.proxySettings as Map<string, string>;
  }

  ownChannels(): Set<string> {
    if (this.channels === EMPTY_SET) this.channels = new Set();
    return this.channels as Set<string>;
  }

  /** The proxy's settings go back to the start-up packet's (RESET ALL, DISCARD ALL). */
  resetProxySettings(): void {
    this.proxySettings = this.startupProxySettings ?? EMPTY_MAP;
  }

  /** DISCARD ALL ran or DEALLOCATE ALL: no statement of the client is left on its server. */
  forgetStatements(): void {
    this.statements = EMPTY_MAP;
    this.sqlStatements = EMPTY_MAP;
  }

  /** Returns true when this call pinned the client (it was not pinned before). */
  pin(reason: string): boolean {
    if (this.pinned) return false;
    this.pinned = true;
    this.pinReason = reason;
    return true;
  }

  /** A named statement's text, decoded again from its Parse (only with a hidden-code registry). */
  statementText(name: string): string {
    const st = this.statements.get(name);
    if (!st) return '';
    if (st.text === undefined) {
      const d = decodeParse(st.parse.subarray(5));
      st.text = d.ok ? d.value.query : '';
    }
    return st.text;
  }

  /** A Query of the proxy's own destroys the unnamed statement on its connection: keep a copy. */
  saveUnnamed(maxBytes: number): void {
    if (this.unnamedFrame !== null && this.unnamedFrame.bytes.length <= maxBytes)
      this.unnamedSaved = Buffer.from(this.unnamedFrame.bytes);
    this.unnamedFrame = null;
  }

  /**
   * The search_path (as of the transaction whose SETs are `txSettings`) lets user functions shadow
   * built-ins: the client's, or else the default a role or the database sets (`byDefault`).
   */
  shadowsBuiltins(txSettings: readonly SessionEffect[], byDefault: boolean): boolean {
    for (let i = txSettings.length - 1; i >= 0; i--) {
      const e = txSettings[i]!;
      if (e.kind === 'reset_all' || (e.kind === 'reset' && e.name === 'search_path')) {
        // RESET gives the start-up search_path back (reset-rewrite.ts), or else the default a
        // role or the database sets.
        const v = this.startupSettings.get('search_path');
        return v !== undefined ? searchPathShadowsBuiltins(v) : byDefault;
      }
      if (e.kind === 'set' && e.name === 'search_path') return searchPathShadowsBuiltins(e.value);
    }
    const v = this.settings.get('search_path');
    return v !== undefined ? searchPathShadowsBuiltins(v) : byDefault;
  }

  /** The transaction's SETs committed: the record becomes the value each left (settings-record.ts). */
  commitSettings(
    txSettings: readonly SessionEffect[],
    serverParams: ReadonlyMap<string, string> | null,
  ): void {
    if (txSettings.length === 0) return;
    this.settings = committedSettings(this.settings, txSettings, this.startupSettings, serverParams);
  }
}

export function sameSettings(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  // Settings maps are replaced, never changed: a connection shares its last client's map.
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const k of a.keys()) if (b.get(k) !== a.get(k)) return false;
  return true;
}
