/**
 * The differential corpus's moving parts that touch servers: loading the same schema and rows
 * into the sharded cluster (through the proxy: DDL, Citus's API calls, COPY … FROM STDIN) and
 * into one plain PostgreSQL, running one statement on a connection with every value as text, and
 * summing verdicts into the report (counts per class, per group, and the entries not matched).
 */
import { Readable } from 'node:stream';
import type pg from 'pg';
import { pgGroupSession } from '../../src/sharding/distribute-copy.js';
import { judge } from './compare.js';
import type { Outcome, Verdict } from './compare.js';
import type { Entry } from './load-corpus.js';
import { SHAPES_AFTER_LOAD, SHAPES_DISTRIBUTION, SHAPES_SCHEMA, shapesRows } from './shapes-data.js';
import { TPCH_DISTRIBUTION, TPCH_SCHEMA, tpchRows } from './tpch-data.js';

/** Every value as PostgreSQL's text output: the comparison works on text. */
export const TEXT_TYPES = { getTypeParser: () => (v: string) => v };

function statements(script: string): string[] {
  return script
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Creates the tables on `c`, distributes them when `sharded`, copies every row in, adds the views. */
export async function loadData(c: pg.Client, sharded: boolean): Promise<Record<string, number>> {
  for (const s of [...statements(TPCH_SCHEMA), ...statements(SHAPES_SCHEMA)]) await c.query(s);
  if (sharded) for (const s of [...TPCH_DISTRIBUTION, ...SHAPES_DISTRIBUTION]) await c.query(s);
  const counts: Record<string, number> = {};
  const rows = { ...tpchRows(), ...shapesRows() };
  const session = pgGroupSession(sharded ? 'proxy' : 'plain', c);
  for (const [table, text] of Object.entries(rows)) {
    if (!text) {
      counts[table] = 0;
      continue;
    }
    // Pieces of 64 kB: rows span CopyData messages, as they do from real clients.
    const buf = Buffer.from(text);
    const pieces: Buffer[] = [];
    for (let i = 0; i < buf.length; i += 65536) pieces.push(buf.subarray(i, i + 65536));
    counts[table] = await session.copyIn(`COPY ${table} FROM STDIN`, Readable.from(pieces));
  }
  for (const s of SHAPES_AFTER_LOAD) await c.query(s);
  return counts;
}

export type Protocol = 'simple' | 'extended' | 'prepared';
export const PROTOCOLS: readonly Protocol[] = ['simple', 'extended', 'prepared'];

let statementNames = 0;

/**
 * One statement's outcome on `c`: columns and rows as text, or the error's SQLSTATE. `simple`
 * sends a Query message; `extended` Parse/Bind/Describe/Execute/Sync with the unnamed statement;
 * `prepared` the same with a named statement (as postgres.js and pgjdbc do after a few runs).
 */
export async function outcome(
  c: pg.Client,
  sql: string,
  protocol: Protocol = 'simple',
  params?: unknown[],
): Promise<Outcome> {
  try {
    const r = await c.query<(string | null)[]>({
      text: sql,
      rowMode: 'array',
      types: TEXT_TYPES,
      ...(params ? { values: params } : {}),
      ...(protocol === 'extended' ? { queryMode: 'extended' } : {}),
      ...(protocol === 'prepared' ? { name: `corpus_${++statementNames}` } : {}),
    });
    return {
      ok: true,
      fields: r.fields.map((f) => ({ name: f.name, typeOid: f.dataTypeID })),
      rows: r.rows,
    };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return { ok: false, code: err.code, message: err.message ?? String(e) };
  }
}

export interface EntryResult {
  id: string;
  protocol: Protocol;
  group: string;
  shape: string;
  verdict: Verdict['kind'];
  /** Rows the plain server returned (-1: it failed). */
  rows: number;
  detail?: string;
  /** The entry's known-wrong mark: a bug already reported. */
  knownWrong?: string;
}

export interface Report {
  total: number;
  /** `wrong` counts only the unexpected ones; `knownWrong` those marked as known bugs. */
  classes: Record<Verdict['kind'], number> & { knownWrong: number };
  groups: Record<string, Record<Verdict['kind'] | 'knownWrong', number>>;
  /** Entries whose plain answer had no rows (worth knowing: they check less). */
  emptyOnPlain: string[];
  wrong: EntryResult[];
  /** Marked known-wrong but answered rightly (or refused) in this protocol. */
  fixed: EntryResult[];
  entries: EntryResult[];
}

/**
 * Runs `entry` on the plain server (simple protocol; extended with its parameters, if any) and on
 * the proxy in each protocol (not `simple` when it has parameters), and judges each proxy answer
 * against the plain one.
 */
export async function runEntry(entry: Entry, plain: pg.Client, proxy: pg.Client): Promise<EntryResult[]> {
  const expected = await outcome(plain, entry.sql, entry.params ? 'extended' : 'simple', entry.params);
  const out: EntryResult[] = [];
  for (const protocol of PROTOCOLS) {
    if (protocol === 'simple' && entry.params) continue;
    const got = await outcome(proxy, entry.sql, protocol, entry.params);
    out.push(result(entry, protocol, expected, judge(entry.sql, expected, got)));
  }
  return out;
}

function result(entry: Entry, protocol: Protocol, expected: Outcome, v: Verdict): EntryResult {
  const detail = v.kind === 'wrong' ? v.reason : v.kind === 'refused' ? v.message : undefined;
  return {
    id: entry.id,
    protocol,
    group: entry.group,
    shape: entry.shape,
    verdict: v.kind,
    rows: expected.ok ? expected.rows.length : -1,
    ...(detail ? { detail } : {}),
    ...(entry.knownWrong ? { knownWrong: entry.knownWrong } : {}),
  };
}

export function summarize(results: EntryResult[]): Report {
  const zero = () => ({ match: 0, refused: 0, slow: 0, wrong: 0, knownWrong: 0 });
  const classes = zero();
  const groups: Record<string, Record<Verdict['kind'] | 'knownWrong', number>> = {};
  for (const r of results) {
    const k = r.verdict === 'wrong' && r.knownWrong ? 'knownWrong' : r.verdict;
    classes[k]++;
    (groups[r.group] ??= zero())[k]++;
  }
  return {
    total: results.length,
    classes,
    groups,
    emptyOnPlain: results.filter((r) => r.rows === 0).map((r) => r.id),
    wrong: results.filter((r) => r.verdict === 'wrong' && !r.knownWrong),
    fixed: results.filter((r) => r.verdict !== 'wrong' && r.knownWrong),
    entries: results,
  };
}

export function formatReport(rep: Report): string {
  const lines = [
    `corpus: ${rep.total} statements — match ${rep.classes.match}, refused ${rep.classes.refused}, ` +
      `slow ${rep.classes.slow}, wrong ${rep.classes.wrong}, known wrong ${rep.classes.knownWrong}`,
  ];
  for (const [g, c] of Object.entries(rep.groups)) {
    const known = c.knownWrong ? `, known wrong ${c.knownWrong}` : '';
    lines.push(
      `  ${g.padEnd(24)} match ${c.match}, refused ${c.refused}, slow ${c.slow}, wrong ${c.wrong}${known}`,
    );
  }
  for (const e of rep.entries.filter((x) => x.verdict === 'slow')) lines.push(`  SLOW ${e.id} (${e.shape})`);
  for (const w of rep.wrong) lines.push(`  WRONG ${w.id} (${w.shape}): ${w.detail ?? ''}`);
  for (const e of rep.entries.filter((x) => x.verdict === 'wrong' && x.knownWrong)) {
    lines.push(`  KNOWN WRONG ${e.id} (${e.knownWrong ?? ''}): ${e.detail ?? ''}`);
  }
  for (const f of rep.fixed)
    lines.push(`  NOT WRONG HERE ${f.id}: marked known-wrong, ${f.verdict} in this protocol`);
  return lines.join('\n');
}
