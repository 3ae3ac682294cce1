/**
 * RESET through the proxy restores the client's start-up values, not the server connection's.
 *
 * PostgreSQL's RESET, RESET ALL, `SET x TO DEFAULT` and DISCARD ALL go back to a setting's *reset
 * value*: the one the session started with (its start-up packet, `options`, role and database
 * defaults). A pooled server connection started with the proxy's own start-up packet, not the
 * client's, and no SQL command can change a live backend's reset values (guc.c makes a value the
 * default only for sources up to PGC_S_CLIENT, never for SET). So the proxy makes RESET mean what
 * it means on a direct connection by rewriting the client's text, in place and in the same
 * statement position (https://www.postgresql.org/docs/current/sql-reset.html):
 *
 * - `RESET x` / `SET x TO DEFAULT` of a setting the client gave at start-up (or application_name,
 *   whose reset value on a direct connection is '') becomes `SET x TO <start-up value>`, and the
 *   CommandComplete tag is given back as `RESET`;
 * - `RESET ALL` becomes `RESET ALL; SET a TO …; SET b TO …`, the added statements' replies dropped.
 *
 * In place, rather than a second query after the client's: a later statement of the same Query
 * text already sees the client's value, and when the implicit transaction fails the rewritten
 * statements are undone with it, exactly as the RESET would have been (a follow-up query would run
 * even when the RESET never did). It costs no round trip. Opening server connections with each
 * client's start-up values instead would be exact too but splits the pool by start-up packet.
 * DISCARD ALL cannot be rewritten so (it refuses to run in a multi-statement text): the caller
 * sends the start-up values in its own Query right behind it (resetFollowUp), which runs only when
 * the DISCARD ALL did (it cannot run in a transaction block, so a failure leaves the follow-up in
 * an aborted block, where it fails too and changes nothing).
 */
import type { SessionEffect } from '../sql/session-effect.js';
import { splitStatements } from '../sql/split.js';
import { quoteSettingName } from './backend/state-check.js';

/** What to do with each CommandComplete of a rewritten Query, in order. */
export type TagAction = 'pass' | 'drop' | 'RESET';

export interface ResetRewrite {
  sql: string;
  tags: TagAction[];
}

/** The value (SQL text) `name` goes back to on RESET for a client with these start-up settings. */
export function restoreValue(startup: ReadonlyMap<string, string>, name: string): string | undefined {
  const v = startup.get(name);
  if (v !== undefined) return v;
  // The proxy's server connections log in as application_name 'pgscale'; a client that gave none
  // would have '' on a direct connection.
  return name === 'application_name' ? "''" : undefined;
}

/** `SET name TO value` for every setting RESET ALL must give back, the encoding first. */
export function restoreStatements(startup: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  const enc = startup.get('client_encoding');
  if (enc !== undefined) out.push(`SET client_encoding TO ${enc}`);
  for (const [k, v] of startup) if (k !== 'client_encoding') out.push(`SET ${quoteSettingName(k)} TO ${v}`);
  if (!startup.has('application_name')) out.push("SET application_name TO ''");
  return out;
}

/**
 * The Query text with its RESETs made to restore the client's start-up values, or null when it
 * needs no change. `effects` are sessionEffects(sql), one per non-empty statement.
 */
export function rewriteResets(
  sql: string,
  effects: readonly SessionEffect[],
  startup: ReadonlyMap<string, string>,
): ResetRewrite | null {
  let needed = false;
  for (const e of effects) {
    if (
      e.kind === 'reset_all' ||
      e.kind === 'local' ||
      (e.kind === 'reset' && restoreValue(startup, e.name) !== undefined)
    ) {
      needed = true;
      break;
    }
  }
  if (!needed) return null;
  const statements = splitStatements(sql);
  if (statements.length !== effects.length) return null; // cannot happen: the same splitter
  const tags: TagAction[] = [];
  let out = '';
  let at = 0;
  let changed = false;
  for (let i = 0; i < statements.length; i++) {
    const st = statements[i]!;
    const e = effects[i]!;
    let replacement: string | null = null;
    if (e.kind === 'reset') {
      const v = restoreValue(startup, e.name);
      if (v !== undefined) {
        replacement = `SET ${quoteSettingName(e.name)} TO ${v}`;
        tags.push(/^\s*reset\b/i.test(st.text) ? 'RESET' : 'pass');
      } else tags.push('pass');
    } else if (e.kind === 'reset_all') {
      const sets = restoreStatements(startup);
      replacement = [st.text, ...sets].join('; ');
      tags.push('pass', ...sets.map((): TagAction => 'drop'));
    } else {
      if (e.kind === 'local') replacement = localDefault(st.text, startup);
      tags.push('pass');
    }
    if (replacement !== null) {
      changed = true;
      out += sql.slice(at, st.start) + replacement;
      at = st.end;
    }
  }
  if (!changed) return null;
  out += sql.slice(at);
  return { sql: out, tags };
}

/** `SET LOCAL name TO DEFAULT` (or `= DEFAULT`, `SET LOCAL TIME ZONE DEFAULT|LOCAL`) of an unquoted name. */
const LOCAL_DEFAULT =
  /^set\s+local\s+(?:(time\s+zone)\s+(?:default|local)|([a-z_][a-z0-9_$]*(?:\.[a-z_][a-z0-9_$]*)*)\s*(?:to|=)\s*default)\s*$/i;

/** The start-up value for a transaction-local reset, as `SET LOCAL name TO value`, or null. */
function localDefault(text: string, startup: ReadonlyMap<string, string>): string | null {
  const m = LOCAL_DEFAULT.exec(text);
  if (!m) return null;
  const name = m[1] ? 'timezone' : m[2]!.toLowerCase();
  const v = restoreValue(startup, name);
  return v === undefined ? null : `SET LOCAL ${quoteSettingName(name)} TO ${v}`;
}
