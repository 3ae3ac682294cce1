import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadParser, parseStatements } from '../sql/pg-parser.js';
import { isObj, unwrap } from '../sql/tree-nodes.js';
import { planScatter, SCATTER_ROW_CAP, type FinalPiece, type ScatterPlan } from './scatter-plan.js';
import { figureColname } from './scatter-text.js';
import { arrayLiteral, typeName } from './scatter-run.js';
import { catalog } from './shard-plan.test-util.js';

const plan = (sql: string): ScatterPlan | null => planScatter(sql, catalog);

/** The final query with every piece filled in as if each partial column were `int8`. */
function finalText(p: ScatterPlan): string {
  assert.equal(p.shape, 'aggregate');
  if (p.shape !== 'aggregate') return '';
  return p.final
    .map((x: FinalPiece) =>
      typeof x === 'string'
        ? x
        : 'source' in x
          ? 'SRC'
          : 'type' in x
            ? `T${x.type}`
            : 'sum' in x
              ? `T${x.sum}`
              : `AVG(${x.avg.join(',')})`,
    )
    .join('');
}

describe('the fast path for reads across groups: which shapes take it', () => {
  before(() => loadParser());

  test('aggregates: the groups send partials, group 0 combines them', () => {
    const p = plan('SELECT count(*), sum(score), avg(score), min(name), max(name) FROM users');
    assert.ok(p !== null && p.shape === 'aggregate');
    assert.equal(
      p.groupSql,
      'SELECT count(*) AS "v0", sum(score) AS "v1", pg_catalog.sum(score) AS "v2", pg_catalog.count(score) AS "v3", min(name) AS "v4", max(name) AS "v5" FROM users LIMIT ' +
        String(SCATTER_ROW_CAP + 1),
    );
    assert.equal(
      finalText(p),
      'SELECT (pg_catalog.sum(p.v0)::pg_catalog.int8) AS "count", (pg_catalog.sum(p.v1)::T1) AS "sum", AVG(2,3) AS "avg", pg_catalog.min(p.v4) AS "min", pg_catalog.max(p.v5) AS "max" FROM SRC',
    );
    assert.deepEqual(p.collations, [
      { at: 4, expr: 'name' },
      { at: 5, expr: 'name' },
    ]);
  });

  test('GROUP BY, HAVING after the merge, ORDER BY an output name and an aggregate, LIMIT/OFFSET', () => {
    const p = plan(
      'SELECT country AS c, count(*) AS n FROM users WHERE score > $1 GROUP BY country HAVING sum(score) > 10 ORDER BY n DESC, count(*), c LIMIT 5 OFFSET 2',
    );
    assert.ok(p !== null && p.shape === 'aggregate');
    assert.equal(
      p.groupSql,
      `SELECT country AS "v0", count(*) AS "v1", sum(score) AS "v2", count(*) AS "v3" FROM users WHERE score > $1 GROUP BY 1 LIMIT ${SCATTER_ROW_CAP + 1}`,
    );
    assert.equal(
      finalText(p),
      'SELECT p.v0 AS "c", (pg_catalog.sum(p.v1)::pg_catalog.int8) AS "n" FROM SRC GROUP BY p.v0 HAVING (pg_catalog.sum(p.v2)::T2) > 10 ORDER BY n DESC, (pg_catalog.sum(p.v3)::pg_catalog.int8), c LIMIT 5 OFFSET 2',
    );
    assert.equal(p.from, 'FROM users');
  });

  test('GROUP BY an ordinal; expressions over keys and aggregates; FILTER; every', () => {
    const p = plan(
      'SELECT lower(name), count(*) FILTER (WHERE score > 1) * 2, round(avg(score), 2), every(score > 0) FROM users GROUP BY 1',
    );
    assert.ok(p !== null && p.shape === 'aggregate');
    assert.match(
      p.groupSql,
      /^SELECT lower\(name\) AS "v0", count\(\*\) FILTER \(WHERE score > 1\) AS "v1", pg_catalog\.sum\(score\) AS "v2", pg_catalog\.count\(score\) AS "v3", every\(score > 0\) AS "v4" FROM users GROUP BY 1 /,
    );
    assert.equal(
      finalText(p),
      'SELECT p.v0 AS "lower", (pg_catalog.sum(p.v1)::pg_catalog.int8) * 2 AS "?column?", round(AVG(2,3), 2) AS "round", pg_catalog.bool_and(p.v4) AS "every" FROM SRC GROUP BY p.v0',
    );
  });

  test('DISTINCT: grouped by its targets', () => {
    const p = plan('SELECT DISTINCT country, score FROM users ORDER BY country');
    assert.ok(p !== null && p.shape === 'aggregate');
    assert.match(p.groupSql, /^SELECT country AS "v0", score AS "v1" FROM users GROUP BY 1, 2 /);
    assert.equal(
      finalText(p),
      'SELECT DISTINCT p.v0 AS "country", p.v1 AS "score" FROM SRC GROUP BY p.v0, p.v1 ORDER BY country',
    );
  });

  test('ORDER BY … LIMIT: each group its first limit + offset rows, the sort keys as extra columns', () => {
    const p = plan('SELECT * FROM users ORDER BY name DESC NULLS LAST, id LIMIT 10 OFFSET 5');
    assert.ok(p !== null && p.shape === 'rows');
    assert.equal(
      p.groupSql,
      'SELECT *, (name) AS "pgscale_s0", (id) AS "pgscale_s1", "users".tableoid AS "pgscale_g" FROM users ORDER BY "pgscale_s0" DESC NULLS LAST, "pgscale_s1" LIMIT 15',
    );
    assert.deepEqual(p.sorts, [' DESC NULLS LAST', '']);
    assert.equal(p.limit, 10);
    assert.equal(p.offset, 5);
    const q = plan('SELECT id AS k, score * 2 AS s FROM users u WHERE name = $1 ORDER BY s, 1 LIMIT 3');
    assert.ok(q !== null && q.shape === 'rows');
    assert.equal(
      q.groupSql,
      'SELECT id AS k, score * 2 AS s, (score * 2) AS "pgscale_s0", (id) AS "pgscale_s1", "u".tableoid AS "pgscale_g" FROM users u WHERE name = $1 ORDER BY "pgscale_s0", "pgscale_s1" LIMIT 3',
    );
    assert.equal(plan('SELECT id FROM users LIMIT 4')?.shape, 'rows');
    const r = plan('SELECT id FROM users WHERE name = $1 ORDER BY id LIMIT $2 OFFSET $3');
    assert.ok(r !== null && r.shape === 'rows');
    assert.match(
      r.groupSql,
      /WHERE name = \$1 ORDER BY "pgscale_s0" LIMIT \(\$2::pg_catalog\.int8 \+ \$3::pg_catalog\.int8\)$/,
    );
    assert.deepEqual([r.limit, r.offset], [{ param: 1 }, { param: 2 }]);
  });

  test('joins with a reference table or a colocated table on the key', () => {
    assert.equal(
      plan('SELECT c.name, count(*) FROM users u JOIN countries c ON c.code = u.country GROUP BY c.name')
        ?.shape,
      'aggregate',
    );
    assert.equal(
      plan('SELECT count(*) FROM users u JOIN orders o ON o.user_id = u.id, countries')?.shape,
      'aggregate',
    );
  });

  test('text with non-ASCII characters before the clauses', () => {
    const p = plan(`SELECT count(*) FILTER (WHERE name = 'é😀'), max(name) FROM users WHERE name <> 'ü'`);
    assert.ok(p !== null && p.shape === 'aggregate');
    assert.match(
      p.groupSql,
      /^SELECT count\(\*\) FILTER \(WHERE name = 'é😀'\) AS "v0", max\(name\) AS "v1" FROM users WHERE name <> 'ü' LIMIT/,
    );
  });

  test('what stays on the general path', () => {
    for (const sql of [
      'SELECT * FROM users', // a whole concatenation streams better there
      'SELECT * FROM users ORDER BY id', // no LIMIT
      `SELECT * FROM users ORDER BY id LIMIT ${SCATTER_ROW_CAP + 1}`,
      'SELECT country, count(*) FROM users GROUP BY country LIMIT $1', // parameters outside WHERE
      'SELECT count(*) + $1 FROM users',
      'SELECT count(DISTINCT score) FROM users',
      'SELECT array_agg(id) FROM users',
      "SELECT string_agg(name, ',') FROM users",
      'SELECT stddev(score) FROM users',
      'SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY score) FROM users',
      'SELECT sum(score ORDER BY id) FROM users',
      'SELECT id, rank() OVER (ORDER BY score) FROM users LIMIT 3',
      'SELECT DISTINCT ON (country) country, id FROM users',
      'SELECT count(*) FROM (SELECT * FROM users) s',
      'WITH x AS (SELECT * FROM users) SELECT count(*) FROM x',
      'SELECT count(*) FROM users WHERE id IN (SELECT user_id FROM orders)',
      'SELECT count(*) FROM users UNION SELECT 1',
      'SELECT count(*) FROM users u LEFT JOIN countries c ON c.code = u.country',
      'SELECT count(*) FROM users, local_table',
      'SELECT count(*) FROM ONLY users',
      'SELECT country, count(*) FROM users GROUP BY ROLLUP (country)',
      'SELECT now(), count(*) FROM users',
      'SELECT count(*) FROM users WHERE created > current_date',
      'SELECT count(*) FROM users WHERE id > random()',
      'SELECT id, name FROM users GROUP BY id', // a column functionally dependent on the key
      'SELECT u.country, count(*) FROM users u GROUP BY country', // a key written two ways
      'SELECT score AS country, count(*) FROM users GROUP BY country', // an output name over an input column
      'SELECT myagg(score) FROM users GROUP BY country',
      'SELECT country, my_function(count(*)) FROM users GROUP BY country',
      'SELECT public.sum(score) FROM users',
      'SELECT * FROM users ORDER BY name USING < LIMIT 3',
      'SELECT * FROM users ORDER BY 1 LIMIT 3', // an ordinal over *
      'SELECT id FROM users FETCH FIRST 3 ROWS WITH TIES',
      'SELECT count(*) FROM users FOR UPDATE',
      'SELECT count(*) FROM users; SELECT 1',
      'EXPLAIN SELECT count(*) FROM users',
      'SELECT 1 FROM users HAVING true',
    ])
      assert.equal(plan(sql), null, sql);
  });
});

describe('the names PostgreSQL gives targets without an alias', () => {
  before(() => loadParser());
  const nameOf = (sql: string) => {
    const p = parseStatements(sql);
    assert.equal(p.kind, 'parsed');
    if (p.kind !== 'parsed') return null;
    const s = unwrap(isObj(p.stmts[0]) ? p.stmts[0].stmt : undefined)!;
    const rt = unwrap((s[1].targetList as unknown[])[0])!;
    return figureColname(rt[1].val);
  };

  test('as FigureColname does', () => {
    assert.equal(nameOf('SELECT count(*)'), 'count');
    assert.equal(nameOf('SELECT t.a'), 'a');
    assert.equal(nameOf('SELECT count(*)::int'), 'count');
    assert.equal(nameOf('SELECT (1 + 2)::int'), 'int4');
    assert.equal(nameOf('SELECT 1 + 2'), '?column?');
    assert.equal(nameOf('SELECT CASE WHEN true THEN 1 END'), 'case');
    assert.equal(nameOf('SELECT CASE WHEN true THEN 1 ELSE sum(x) END'), 'sum');
    assert.equal(nameOf('SELECT coalesce(a, 1)'), 'coalesce');
    assert.equal(nameOf('SELECT greatest(a, 1)'), 'greatest');
    assert.equal(nameOf('SELECT nullif(a, 1)'), 'nullif');
    assert.equal(nameOf('SELECT a COLLATE "C"'), 'a');
    assert.equal(nameOf('SELECT (a).b'), 'b');
  });
});

describe('the partial columns passed between groups', () => {
  test('types by OID with their modifiers; others are not passed', () => {
    assert.equal(typeName(20, -1), 'pg_catalog.int8');
    assert.equal(typeName(1043, 16), 'pg_catalog.varchar(12)');
    assert.equal(typeName(1700, ((10 << 16) | 2) + 4), 'pg_catalog.numeric(10,2)');
    assert.equal(typeName(1700, ((5 << 16) | (-2 & 0x7ff)) + 4), 'pg_catalog.numeric(5,-2)');
    assert.equal(typeName(1114, 3), 'pg_catalog.timestamp(3)');
    assert.equal(typeName(1186, -1), null); // interval: IntervalStyle
    assert.equal(typeName(17, -1), null); // bytea
    assert.equal(typeName(16385, -1), null); // a user type: its OID differs per group
  });
});

describe('the partial values in the final query', () => {
  test('a text array literal: quotes, backslashes, NULL, empty', () => {
    assert.equal(arrayLiteral(['a', null, `q"u\\o'te`, '']), `'{"a",NULL,"q\\"u\\\\o''te",""}'`);
    assert.equal(arrayLiteral([]), `'{}'`);
  });
});
