-- Statements that look pinned to one group but are not, or are pinned by a value written in
-- another type: where a planner that pins too eagerly answers with one group's rows. Each must be
-- answered as PostgreSQL answers it, or refused with 0A000.

-- id: route-001
-- shape: key = numeric literal with a zero fraction (int4 = numeric)
SELECT user_id, name FROM users WHERE user_id = 5.0;

-- id: route-002
-- shape: key = numeric literal with a fraction (no row)
SELECT user_id FROM users WHERE user_id = 5.5;

-- id: route-003
-- shape: key = exponent literal
SELECT user_id FROM users WHERE user_id = 6e0;

-- id: route-004
-- shape: key = quoted literal with a leading zero and spaces
SELECT user_id FROM users WHERE user_id = ' 07 ';

-- id: route-005
-- shape: key cast to text compared with text
SELECT user_id FROM users WHERE user_id::text = '8';

-- id: route-006
-- shape: key cast to numeric compared with a numeric
SELECT user_id FROM users WHERE user_id::numeric = 9.0;

-- id: route-007
-- shape: key in an arithmetic expression
SELECT user_id FROM users WHERE user_id + 0 = 10;

-- id: route-008
-- shape: key = constant expression
SELECT user_id FROM users WHERE user_id = 5 + 6;

-- id: route-009
-- shape: key = scalar subquery
SELECT user_id FROM users WHERE user_id = (SELECT 12);

-- id: route-010
-- shape: negated key equality
SELECT count(*) FROM users WHERE NOT (user_id = 13);

-- id: route-011
-- shape: key <> ALL (array)
SELECT count(*) FROM users WHERE user_id <> ALL (ARRAY[14]);

-- id: route-012
-- shape: key equality IS NOT TRUE
SELECT count(*) FROM users WHERE (user_id = 15) IS NOT TRUE;

-- id: route-013
-- shape: key equality compared with false
SELECT count(*) FROM users WHERE (user_id = 16) = false;

-- id: route-014
-- shape: key equality inside CASE
SELECT count(*) FROM users WHERE CASE WHEN user_id = 17 THEN true ELSE age > 40 END;

-- id: route-015
-- shape: key equality OR another key on another group
SELECT user_id FROM users WHERE user_id = 18 OR user_id = 19 OR user_id = 20 ORDER BY 1;

-- id: route-016
-- shape: two contradictory key equalities
SELECT user_id FROM users WHERE user_id = 21 AND user_id = 22;

-- id: route-017
-- shape: key equality in a LEFT JOIN's ON clause on the preserved side
SELECT count(*), count(e.event_id) FROM users u LEFT JOIN events e ON e.user_id = u.user_id AND u.user_id = 23;

-- id: route-018
-- shape: key equality in a RIGHT JOIN's ON clause on the nullable side
SELECT count(*), count(e.event_id) FROM events e RIGHT JOIN users u ON u.user_id = e.user_id AND e.user_id = 24;

-- id: route-019
-- shape: key equality in a FULL JOIN's ON clause
SELECT count(*) FROM users u FULL JOIN events e ON e.user_id = u.user_id AND u.user_id = 25;

-- id: route-020
-- shape: one table pinned, another unpinned in the same FROM
SELECT count(*) FROM users u, events e WHERE u.user_id = 26 AND e.kind = 'buy';

-- id: route-021
-- shape: pinned outer query, unpinned scalar subquery in the select list
SELECT name, (SELECT count(*) FROM events) FROM users WHERE user_id = 27;

-- id: route-022
-- shape: pinned outer query, unpinned EXISTS
SELECT name FROM users WHERE user_id = 28 AND EXISTS (SELECT 1 FROM events WHERE kind = 'refund' AND amount > 990);

-- id: route-023
-- shape: pinned branch UNION an unpinned branch
SELECT user_id FROM users WHERE user_id = 29 UNION SELECT user_id FROM users WHERE age = 77 ORDER BY 1;

-- id: route-024
-- shape: pinned branch UNION ALL a branch pinned to another key
SELECT user_id FROM users WHERE user_id = 30 UNION ALL SELECT user_id FROM users WHERE user_id = 31 ORDER BY 1;

-- id: route-025
-- shape: pinned CTE, unpinned main query
WITH one AS (SELECT * FROM users WHERE user_id = 32) SELECT count(*) FROM one, users WHERE users.age = one.age;

-- id: route-026
-- shape: two distributed tables pinned to different keys (non-colocated)
SELECT u.name, a.code FROM users u, accounts a WHERE u.user_id = 33 AND a.code = 'acc-0033';

-- id: route-027
-- shape: colocated tables pinned to different keys
SELECT u.name, e.event_id FROM users u, events e WHERE u.user_id = 34 AND e.user_id = 35 ORDER BY 2;

-- id: route-028
-- shape: pinned distributed table joined with a local table (group 0 only)
SELECT n.note_id, u.name FROM notes n JOIN users u ON u.user_id = n.user_id WHERE u.user_id = 36;

-- id: route-029
-- shape: pinned distributed table with a local table, another key
SELECT count(*) FROM users u, notes n WHERE u.user_id = 37 AND n.note_id < 50;

-- id: route-030
-- shape: pinned distributed table with a local table, a third key
SELECT count(*) FROM users u, notes n WHERE u.user_id = 38 AND n.note_id < 50;

-- id: route-031
-- shape: pinned key and a subquery on a local table
SELECT name FROM users WHERE user_id = 39 AND user_id NOT IN (SELECT coalesce(user_id, 0) FROM notes);

-- id: route-034
-- shape: a SQL function that reads a distributed table
-- known-wrong: the proxy does not look into functions; the call names no table, so it runs on one group and counts that group's rows only
SELECT count_users();

-- id: route-035
-- shape: a SQL function in a pinned statement
-- known-wrong: the function's query runs on the pinned group only and counts that group's rows
SELECT name, count_users() FROM users WHERE user_id = 40;

-- id: route-036
-- shape: ONLY on a distributed table, pinned
SELECT count(*) FROM ONLY users WHERE user_id = 41;

-- id: route-037
-- shape: schema-qualified and quoted names, pinned
SELECT "user_id", name FROM public."users" AS "U" WHERE "U".user_id = 42;

-- id: route-038
-- shape: text key cast to a shorter varchar
SELECT count(*) FROM accounts WHERE code::varchar(3) = 'acc';

-- id: route-039
-- shape: text key through lower()
SELECT code FROM accounts WHERE lower(code) = 'acc-0044';

-- id: route-040
-- shape: text key with a trailing space (no row)
SELECT code FROM accounts WHERE code = 'acc-0045 ';

-- id: route-041
-- shape: text key with COLLATE "C"
SELECT code FROM accounts WHERE code = 'acc-0046' COLLATE "C";

-- id: route-042
-- shape: text key LIKE without wildcards
SELECT code FROM accounts WHERE code LIKE 'acc-0047';

-- id: route-043
-- shape: row-value equality including the key
SELECT user_id FROM users WHERE (user_id, true) = (48, true);

-- id: route-044
-- shape: key IN (subquery of constants)
SELECT user_id FROM users WHERE user_id IN (SELECT 49 UNION SELECT 50) ORDER BY 1;

-- id: route-045
-- shape: key equality with an OR that is always false
SELECT user_id FROM users WHERE user_id = 51 OR false;

-- id: route-046
-- shape: key equality ORed with IS NULL
SELECT user_id FROM users WHERE user_id = 52 OR age IS NULL ORDER BY 1;

-- id: route-047
-- shape: HAVING on the key
SELECT user_id, count(*) FROM events GROUP BY user_id HAVING user_id = 54;

-- id: route-048
-- shape: pinned key in a derived table, unpinned outer table
SELECT count(*) FROM (SELECT * FROM users WHERE user_id = 55) a, users b WHERE b.age = a.age;

-- id: route-049
-- shape: pinned table IN (subquery on another distributed table pinned elsewhere)
SELECT name FROM users WHERE user_id = 56 AND user_id IN (SELECT owner FROM accounts WHERE code = 'acc-0056');

-- id: route-050
-- shape: SELECT FOR UPDATE pinned
SELECT user_id, name FROM users WHERE user_id = 57 FOR UPDATE;

-- id: route-051
-- shape: key = smallint and bigint casts
SELECT user_id FROM users WHERE user_id = 58::smallint OR user_id = 58::bigint;

-- id: route-052
-- shape: key between the same bound written twice
SELECT user_id FROM users WHERE user_id >= 59 AND user_id <= 59;

-- id: route-053
-- shape: pinned reference-table read with a local table (group 0)
SELECT count(*) FROM kinds, notes;

-- id: route-054
-- shape: key = ANY of a single-element array written as text
SELECT user_id FROM users WHERE user_id = ANY ('{60}');

-- id: route-055
-- shape: key = ALL of a two-element array (no row)
SELECT user_id FROM users WHERE user_id = ALL (ARRAY[61, 62]);
