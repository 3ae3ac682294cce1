/**
 * Reads the differential corpus: every test/corpus/*.sql file, cut into entries. An entry starts
 * with a line `-- id: <unique id>`, then `-- shape: <what it exercises>`, then exactly one SQL
 * statement (an optional trailing semicolon). Lines before a file's first id are the file's
 * comment. `-- known-wrong: <the bug>` after the shape marks a statement the proxy is known to
 * answer wrongly today: it is reported, not failed, until it is fixed (then the mark must go).
 * `-- params: <JSON array>` gives Bind parameters for $1, $2, … (arrays become PostgreSQL arrays). The file name (without .sql) is the entry's group in the summary.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStatements } from '../../src/sql/pg-parser.js';

export const CORPUS_DIR = fileURLToPath(new URL('.', import.meta.url));

export interface Entry {
  id: string;
  group: string;
  shape: string;
  sql: string;
  /** A product bug this statement shows today (the proxy's answer differs from PostgreSQL's). */
  knownWrong?: string;
  /** Bind parameters ($1, $2, …): the statement then runs in the extended protocol only. */
  params?: unknown[];
}

export function parseCorpusFile(text: string, group: string): Entry[] {
  const out: Entry[] = [];
  let cur: { id: string; shape: string; knownWrong?: string; params?: unknown[]; lines: string[] } | null =
    null;
  const close = () => {
    if (!cur) return;
    const sql = cur.lines.join('\n').trim().replace(/;\s*$/, '').trim();
    out.push({
      id: cur.id,
      group,
      shape: cur.shape,
      sql,
      ...(cur.knownWrong ? { knownWrong: cur.knownWrong } : {}),
      ...(cur.params ? { params: cur.params } : {}),
    });
  };
  for (const line of text.split('\n')) {
    const id = /^--\s*id:\s*(\S+)\s*$/.exec(line);
    if (id) {
      close();
      cur = { id: id[1]!, shape: '', lines: [] };
      continue;
    }
    if (!cur) continue;
    const shape = /^--\s*shape:\s*(.*)$/.exec(line);
    const known = /^--\s*known-wrong:\s*(.*)$/.exec(line);
    const params = /^--\s*params:\s*(\[.*\])\s*$/.exec(line);
    if (shape && cur.lines.length === 0) cur.shape = shape[1]!.trim();
    else if (known && cur.lines.length === 0) cur.knownWrong = known[1]!.trim();
    else if (params && cur.lines.length === 0) cur.params = JSON.parse(params[1]!) as unknown[];
    else cur.lines.push(line);
  }
  close();
  return out;
}

/** Every entry of every corpus file, checked: unique ids, a shape, one statement each (or a syntax error). */
export function loadCorpus(dir = CORPUS_DIR): Entry[] {
  const entries = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .flatMap((f) => parseCorpusFile(readFileSync(join(dir, f), 'utf8'), basename(f, '.sql')));
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.id)) throw new Error(`corpus: duplicate id ${e.id}`);
    seen.add(e.id);
    if (!e.shape) throw new Error(`corpus: ${e.id} has no "-- shape:" line`);
    const p = parseStatements(e.sql);
    // A syntax error is a fair entry (both sides must refuse it alike); a crash is not.
    if (p.kind === 'rejected') continue;
    if (p.kind !== 'parsed') throw new Error(`corpus: ${e.id} could not be parsed (${p.kind})`);
    if (p.stmts.length !== 1) throw new Error(`corpus: ${e.id} holds ${p.stmts.length} statements, not one`);
  }
  return entries;
}
