/**
 * The admin console's SHOW tables of a proxy running as several workers (`pgscale proxy
 * --workers N`): every worker answers from its own state and the worker the console is connected
 * to merges the answers. Tables per pool or per name (POOLS, STATS, DATABASES, LISTS, MEM) give
 * one row per key with the counters summed over the workers (PgBouncer's columns unchanged, so
 * its exporters read them as before); tables of things (CLIENTS, SERVERS, NODES) list every
 * worker's rows with a last column `worker`; SHOW WORKERS lists the workers and marks the one
 * answering; the rest (HELP, VERSION, CONFIG, USERS) are the same on every worker and come from
 * the answering one. Pure: no process or proxy here.
 */
import type { Cell, Table } from './admin-show.js';

export interface WorkerTable {
  worker: number;
  table: Table;
}

/** Tables whose rows are the same on every worker. */
const SAME_EVERYWHERE = new Set(['HELP', 'VERSION', 'CONFIG', 'USERS']);
/** Key columns of the tables merged row by row. */
const KEYED: Record<string, number> = { POOLS: 2, STATS: 2, DATABASES: 1, LISTS: 1, MEM: 1 };
/** Columns taken as the largest value, not the sum. */
const MAX_COLUMNS: Record<string, ReadonlySet<string>> = {
  POOLS: new Set(['maxwait']),
  MEM: new Set(['size']),
};
/** Rows (by key) whose numbers are the largest, not the sum: every worker has them all. */
const MAX_ROWS: Record<string, ReadonlySet<string>> = { LISTS: new Set(['databases', 'users']) };

/** The tables of every worker merged into the one the console shows; null: none answered. */
export function mergeTables(what: string, parts: readonly WorkerTable[], answering: number): Table | null {
  const mine = parts.find((p) => p.worker === answering) ?? parts[0];
  if (!mine) return null;
  const sorted = [...parts].sort((a, b) => a.worker - b.worker);
  if (SAME_EVERYWHERE.has(what)) return mine.table;
  if (what === 'WORKERS') {
    const at = mine.table.columns.indexOf('answering');
    return {
      columns: mine.table.columns,
      rows: sorted.flatMap((p) =>
        p.table.rows.map((r) => r.map((c, i) => (i === at ? p.worker === answering : c))),
      ),
    };
  }
  const keyed = KEYED[what];
  if (keyed !== undefined) return mergeKeyed(what, keyed, sorted);
  return {
    columns: [...mine.table.columns, 'worker'],
    rows: sorted.flatMap((p) => p.table.rows.map((r) => [...r, p.worker])),
  };
}

function mergeKeyed(what: string, keyColumns: number, parts: readonly WorkerTable[]): Table {
  const columns = parts[0]!.table.columns;
  const maxCols = MAX_COLUMNS[what] ?? new Set<string>();
  const maxRows = MAX_ROWS[what] ?? new Set<string>();
  const rows = new Map<string, Cell[]>();
  for (const p of parts) {
    for (const r of p.table.rows) {
      const key = JSON.stringify(r.slice(0, keyColumns));
      const have = rows.get(key);
      if (!have) {
        rows.set(key, [...r]);
        continue;
      }
      const byMax = maxRows.has(String(r[0]));
      for (let i = keyColumns; i < r.length; i++)
        have[i] = combine(have[i] ?? null, r[i] ?? null, byMax || maxCols.has(columns[i] ?? ''));
    }
  }
  return { columns, rows: [...rows.values()] };
}

/** Numbers add up (or the larger), flags are on if on anywhere, anything else is the first seen. */
function combine(a: Cell, b: Cell, byMax: boolean): Cell {
  if (typeof a === 'number' && typeof b === 'number') return byMax ? Math.max(a, b) : a + b;
  if (typeof a === 'boolean' && typeof b === 'boolean') return a || b;
  return a ?? b;
}
