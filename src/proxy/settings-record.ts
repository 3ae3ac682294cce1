/**
 * A client's session settings after a transaction commits: its settings before, the SET/RESET
 * effects of the transaction in order, its start-up values and what the server reports now. The
 * result is what the server connection holds, which the proxy replays elsewhere:
 *
 * - `SET x` gives x the text the client wrote, except for settings the server reports
 *   (GUC_REPORT: DateStyle, TimeZone, IntervalStyle, client_encoding…), which take the value its
 *   ParameterStatus says they have now: `SET datestyle TO iso` then `SET datestyle TO ymd` leaves
 *   `ISO, YMD`, which replaying `ymd` on another connection would not give (it would merge into
 *   that connection's style). The server sends ParameterStatus before ReadyForQuery, so the
 *   reported values are those at the end of the transaction (SET LOCAL undone). Other settings
 *   keep the text: PostgreSQL computes their value from that text alone (DateStyle is the only
 *   setting whose SET merges with the current value). search_path keeps it too: its reported form
 *   is one string, which SET would take for a single schema name.
 * - `RESET x` gives the client's start-up value (reset-rewrite.ts put it there), or for a custom
 *   setting (`myapp.x`) `DEFAULT`: RESET leaves the placeholder, empty, and `SET myapp.x = DEFAULT`
 *   recreates it where replayed; otherwise x goes back to the server's default (not tracked).
 * - `RESET ALL` gives the start-up values (application_name '' when not given), custom settings
 *   kept as `DEFAULT` placeholders.
 */
import type { SessionEffect } from '../sql/session-effect.js';
import { sqlLiteral } from './frontend/startup-params.js';
import { restoreValue } from './reset-rewrite.js';

/** An extension's or application's setting (`custom.my_guc`): RESET keeps it as an empty placeholder. */
export function isCustomSetting(name: string): boolean {
  return name.includes('.');
}

/**
 * The settings after committing `tx` (never empty: the caller skips that case); `startup` itself
 * when they are exactly the start-up settings (one map shared until a client changes something).
 * `reported`: the server's ParameterStatus values now (ServerConn.params), if attached.
 */
export function committedSettings(
  before: ReadonlyMap<string, string>,
  tx: readonly SessionEffect[],
  startup: ReadonlyMap<string, string>,
  reported: ReadonlyMap<string, string> | null,
): ReadonlyMap<string, string> {
  const out = new Map(before);
  const touched = new Set<string>();
  for (const e of tx) {
    if (e.kind === 'set') {
      out.set(e.name, e.value);
      touched.add(e.name);
    } else if (e.kind === 'reset') {
      const v = restoreValue(startup, e.name) ?? (isCustomSetting(e.name) ? 'DEFAULT' : undefined);
      if (v !== undefined) out.set(e.name, v);
      else out.delete(e.name);
      touched.add(e.name);
    } else if (e.kind === 'reset_all') {
      const custom = [...out.keys()].filter((k) => isCustomSetting(k) && !startup.has(k));
      out.clear();
      for (const [k, v] of startup) out.set(k, v);
      if (!startup.has('application_name')) out.set('application_name', "''");
      for (const k of custom) out.set(k, 'DEFAULT');
    }
  }
  if (reported) {
    for (const [k, v] of reported) {
      const name = k.toLowerCase();
      if (name !== 'search_path' && touched.has(name) && out.has(name)) out.set(name, sqlLiteral(v));
    }
  }
  if (out.size === startup.size && [...out].every(([k, v]) => startup.get(k) === v)) return startup;
  return out;
}
