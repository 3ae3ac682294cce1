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
SELECT count_users();

-- id: route-035
-- shape: a SQL function in a pinned statement
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

-- id: route-056
-- shape: JOIN USING the key with the merged column pinned
SELECT user_id, name, event_id FROM users JOIN events USING (user_id) WHERE user_id = 63 ORDER BY event_id;

-- id: route-057
-- shape: non-colocated join, one side pinned only
SELECT count(*) FROM orders o JOIN customer c ON c.c_custkey = o.o_custkey WHERE o.o_orderkey = 64;

-- id: route-058
-- shape: non-colocated join, both sides pinned (maybe on two groups)
SELECT o.o_orderkey, c.c_name FROM orders o JOIN customer c ON c.c_custkey = o.o_custkey WHERE o.o_orderkey = 65 AND c.c_custkey = (SELECT 1);

-- id: route-059
-- shape: non-colocated tables each pinned by a constant
SELECT o.o_orderkey, c.c_custkey FROM orders o, customer c WHERE o.o_orderkey = 66 AND c.c_custkey = 67;

-- id: route-060
-- shape: a CTE named like a distributed table beside the real one, schema-qualified
WITH users AS (SELECT 1 AS user_id) SELECT p.name FROM users, public.users p WHERE p.user_id = 68 AND users.user_id = 1;

-- id: route-061
-- shape: a derived table aliased like a distributed table, joined on the key
SELECT count(*) FROM events, (SELECT 69 AS user_id) users WHERE events.user_id = users.user_id;

-- id: route-062
-- shape: unpinned outer table, inner EXISTS pinned by a constant
SELECT count(*) FROM users u WHERE EXISTS (SELECT 1 FROM events e WHERE e.user_id = 70);

-- id: route-063
-- shape: key = scalar subquery on a pinned colocated table
SELECT event_id FROM events e WHERE e.user_id = (SELECT u.user_id FROM users u WHERE u.user_id = 71) ORDER BY 1;

-- id: route-064
-- shape: LATERAL subquery pinned, outer pinned to the same key
SELECT u.user_id, x.event_id FROM users u, LATERAL (SELECT event_id FROM events e WHERE e.user_id = 72) x WHERE u.user_id = 72 ORDER BY 2;

-- id: route-065
-- shape: LATERAL subquery pinned, outer unpinned
SELECT count(*) FROM users u, LATERAL (SELECT event_id FROM events e WHERE e.user_id = 73 LIMIT 1) x;

-- id: route-066
-- shape: key IN text literals
SELECT user_id FROM users WHERE user_id IN ('74', '75') ORDER BY 1;

-- id: route-067
-- shape: key = ANY of a typed array literal
SELECT user_id FROM users WHERE user_id = ANY ('{76,77}'::int[]) ORDER BY 1;

-- id: route-068
-- shape: key = ANY of an array with NULL
SELECT user_id FROM users WHERE user_id = ANY (ARRAY[78, NULL]);

-- id: route-069
-- shape: the same pin written twice with OR
SELECT user_id FROM users WHERE user_id IN (79) OR user_id IN (79);

-- id: route-070
-- shape: constant on the left, parenthesised key
SELECT user_id FROM users WHERE 80 = (user_id);

-- id: route-071
-- shape: key = unary plus literal
SELECT user_id FROM users WHERE user_id = +81;

-- id: route-072
-- shape: int4 key = bigint literal out of int4 range (no row, no error)
SELECT user_id FROM users WHERE user_id = 99999999999;

-- id: route-073
-- shape: int4 key = quoted literal out of int4 range (22003 on both)
SELECT user_id FROM users WHERE user_id = '99999999999';

-- id: route-074
-- shape: int4 key = non-numeric quoted literal (22P02 on both)
SELECT user_id FROM users WHERE user_id = 'abc';

-- id: route-075
-- shape: text key = integer literal (42883 on both)
SELECT code FROM accounts WHERE code = 123;

-- id: route-076
-- shape: key pinned and the same key in an OR inside an AND
SELECT user_id FROM users WHERE user_id = 82 AND (user_id = 82 OR age = 1);

-- id: route-077
-- shape: pinned read of a reference table with a distributed table pinned
SELECT k.label, count(*) FROM events e JOIN kinds k USING (kind) WHERE e.user_id = 83 GROUP BY k.label ORDER BY 1;

-- id: route-078
-- shape: reference table LEFT JOIN a pinned distributed table (preserved side is the reference)
SELECT k.kind, count(e.event_id) FROM kinds k LEFT JOIN events e ON e.kind = k.kind AND e.user_id = 84 GROUP BY k.kind ORDER BY 1;

-- id: route-079
-- shape: pinned distributed table NOT EXISTS on a reference table
SELECT count(*) FROM events e WHERE e.user_id = 85 AND NOT EXISTS (SELECT 1 FROM kinds k WHERE k.kind = e.kind);

-- id: route-080
-- shape: bigint literal equal to an int4 key
SELECT user_id FROM users WHERE user_id = 86::int8;

-- id: route-081
-- shape: key pinned in a window's derived table, outer filter
SELECT * FROM (SELECT event_id, rank() OVER (ORDER BY amount DESC NULLS LAST, event_id) AS r FROM events WHERE user_id = 87) t WHERE r <= 3 ORDER BY r;

-- id: route-082
-- shape: key pinned with a negative literal (no row)
SELECT user_id FROM users WHERE user_id = -88;

-- id: route-083
-- shape: text key pinned by an E'' literal
SELECT code FROM accounts WHERE code = E'acc-0089';

-- id: route-084
-- shape: text key pinned by a dollar-quoted literal
SELECT code FROM accounts WHERE code = $$acc-0090$$;

-- id: route-085
-- shape: text key with a varchar cast on the literal
SELECT code FROM accounts WHERE code = 'acc-0091'::varchar;

-- id: route-086
-- shape: int4 key = a literal cast to bigint, out of int4 range (no row, no error)
SELECT user_id FROM users WHERE user_id = 99999999999::int8;

-- id: route-087
-- shape: int4 key IN a list with a value out of int4 range
SELECT user_id FROM users WHERE user_id IN (92, 99999999999);

-- id: route-088
-- shape: int4 key = a quoted literal cast to bigint, in range
SELECT user_id FROM users WHERE user_id = '93'::int8;

-- id: route-089
-- shape: int8 key column compared with a literal beyond int8 (numeric comparison, no row)
SELECT count(*) FROM events WHERE event_id = 99999999999999999999 AND user_id = 94;

