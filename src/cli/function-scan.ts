/**
 * The proxy does not look into functions, so a call of a user function whose body reads a
 * distributed table would see one group's rows only: such calls are refused. This finds them —
 * the SQL and PL/pgSQL functions of group 0 whose body names a distributed table (lexical,
 * conservative) — as one pattern matching a call of any of them.
 */
import type pg from 'pg';
import type { Catalog } from '../sharding/types.js';

function regexQuote(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The pattern of calls to refuse (null: none), read with a new client from `client`. */
export async function scanFunctions(catalog: Catalog, client: () => pg.Client): Promise<RegExp | null> {
  const names = [...catalog.tables.values()].filter((t) => t.kind === 'distributed').map((t) => t.rel.name);
  if (names.length === 0) return null;
  const c = client();
  try {
    await c.connect();
    const r = await c.query<{ name: string }>(
      `SELECT DISTINCT p.proname AS name FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND l.lanname IN ('sql', 'plpgsql')
          AND p.prosrc ~* $1`,
      [`\\m(${names.map(regexQuote).join('|')})\\M`],
    );
    return r.rows.length === 0
      ? null
      : new RegExp(`(?<![\\w$])(${r.rows.map((x) => regexQuote(x.name)).join('|')})\\s*\\(`, 'i');
  } finally {
    await c.end().catch(() => undefined);
  }
}
