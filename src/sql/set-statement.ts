/**
 * Reads SET and RESET statements, including the special forms the grammar spells differently
 * from the generic `name TO value` (TIME ZONE, NAMES, SCHEMA, XML OPTION, ROLE, SESSION
 * AUTHORIZATION), and maps each to the setting it really changes, so that the proxy replays
 * `SET timezone TO ...` whichever way the client wrote it. Setting names are folded to lower case
 * even when quoted, because PostgreSQL looks settings up case-insensitively (guc.c).
 * https://www.postgresql.org/docs/current/sql-set.html
 * https://www.postgresql.org/docs/current/sql-reset.html
 */
import type { SessionEffect } from './session-effect.js';
import type { StatementTokens } from './statement-tokens.js';
import { DOT, EQUALS } from './statement-tokens.js';
import { foldIdentifier } from './token-value.js';

const OTHER: SessionEffect = { kind: 'other' };
const LOCAL: SessionEffect = { kind: 'local' };

/** Settings whose change cannot be replayed by SET: they change who the session is. */
const IDENTITY = new Set(['role', 'session_authorization']);
/** Settings that only last for the current transaction whatever the SET says. */
const TRANSACTION_SCOPED = new Set([
  'transaction_isolation',
  'transaction_read_only',
  'transaction_deferrable',
]);

export function setEffect(s: StatementTokens): SessionEffect {
  let i = s.first + 1;
  if (s.isWord(i, 'local')) return localSet(s, i + 1); // SET LOCAL anything lasts only until the transaction ends
  if (s.isWord(i, 'session') && !s.isAnyWord(i + 1, ['authorization', 'characteristics'])) i++;
  if (s.isAnyWord(i, ['transaction', 'constraints'])) return LOCAL;
  if (s.isWord(i, 'session') && s.isWord(i + 1, 'characteristics')) {
    return sticky('SET SESSION CHARACTERISTICS');
  }
  if (s.isWord(i, 'session') && s.isWord(i + 1, 'authorization')) return sticky('SET SESSION AUTHORIZATION');
  if (s.isWord(i, 'role')) return sticky('SET ROLE');
  if (s.isWord(i, 'time') && s.isWord(i + 1, 'zone')) {
    return s.isWord(i + 2, 'local') && i + 3 === s.last ? reset('timezone') : setTo(s, 'timezone', i + 2);
  }
  if (s.isWord(i, 'names'))
    return i + 1 === s.last ? reset('client_encoding') : setTo(s, 'client_encoding', i + 1);
  if (s.isWord(i, 'schema')) return setTo(s, 'search_path', i + 1);
  if (s.isWord(i, 'xml') && s.isWord(i + 1, 'option')) return setTo(s, 'xmloption', i + 2);
  const [name, next] = settingName(s, i);
  // SET x FROM CURRENT makes the value in force now (perhaps a SET LOCAL one) the session's: a
  // value the proxy cannot know from the text.
  if (name !== undefined && s.isWord(next, 'from') && s.isWord(next + 1, 'current')) {
    return sticky('SET ... FROM CURRENT');
  }
  if (name === undefined || !(s.isWord(next, 'to') || s.charOf(next) === EQUALS)) return OTHER;
  if (IDENTITY.has(name)) return sticky(`SET ${name}`);
  if (TRANSACTION_SCOPED.has(name)) return LOCAL;
  return setTo(s, name, next + 1);
}

export function resetEffect(s: StatementTokens): SessionEffect {
  const i = s.first + 1;
  if (s.isWord(i, 'all') && i + 1 === s.last) return { kind: 'reset_all' };
  if (s.isWord(i, 'time') && s.isWord(i + 1, 'zone')) return reset('timezone');
  if (s.isWord(i, 'session') && s.isWord(i + 1, 'authorization'))
    return sticky('RESET SESSION AUTHORIZATION');
  if (s.isWord(i, 'transaction') && s.isWord(i + 1, 'isolation')) return LOCAL;
  const [name, next] = settingName(s, i);
  if (name === undefined || next !== s.last) return OTHER;
  if (IDENTITY.has(name)) return sticky(`RESET ${name}`);
  if (TRANSACTION_SCOPED.has(name)) return LOCAL;
  return reset(name);
}

/** A dotted setting name starting at `i` (myapp.x), folded, and the index after it. */
function settingName(s: StatementTokens, i: number): [string | undefined, number] {
  let name = s.name(i);
  if (name === undefined) return [undefined, i];
  let j = i + 1;
  for (; s.charOf(j) === DOT && s.name(j + 1) !== undefined; j += 2) name += '.' + (s.name(j + 1) ?? '');
  return [foldIdentifier(name), j];
}

/** `name` set to the text from token `i` on; DEFAULT (unquoted, alone) means reset. */
function setTo(s: StatementTokens, name: string, i: number): SessionEffect {
  if (!s.has(i)) return OTHER;
  if (s.isWord(i, 'default') && i + 1 === s.last) return reset(name);
  return { kind: 'set', name, value: s.textFrom(i) };
}

/** SET LOCAL: the search_path value it sets, kept (a SET LOCAL of anything else is plain LOCAL). */
function localSet(s: StatementTokens, i: number): SessionEffect {
  let at = -1;
  if (s.isWord(i, 'schema')) at = i + 1;
  else if (
    s.name(i) !== undefined &&
    foldIdentifier(s.name(i)!) === 'search_path' &&
    (s.isWord(i + 1, 'to') || s.charOf(i + 1) === EQUALS)
  )
    at = i + 2;
  if (at < 0 || !s.has(at)) return LOCAL;
  return { kind: 'local', searchPath: s.textFrom(at) };
}

function reset(name: string): SessionEffect {
  return { kind: 'reset', name };
}

function sticky(reason: string): SessionEffect {
  return { kind: 'sticky', reason };
}
