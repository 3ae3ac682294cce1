-- Statements pinned to one group by their distribution column (= constant, IN lists, colocated
-- joins on the key, reference tables alongside): what the proxy answers today. Any difference
-- here is a wrong answer from one group.

-- id: pin-001
-- shape: point lookup by key
SELECT * FROM users WHERE user_id = 17;

-- id: pin-002
-- shape: point lookup by key, missing key
SELECT * FROM users WHERE user_id = 100000;

-- id: pin-003
-- shape: point lookup on orders by key
SELECT o_orderkey, o_custkey, o_totalprice, o_orderdate FROM orders WHERE o_orderkey = 4242;

-- id: pin-004
-- shape: lineitem rows of one order, ordered
SELECT l_linenumber, l_partkey, l_quantity, l_extendedprice FROM lineitem WHERE l_orderkey = 77 ORDER BY l_linenumber;

-- id: pin-005
-- shape: pinned aggregate over one key
SELECT count(*), sum(amount), avg(amount), min(at), max(at) FROM events WHERE user_id = 12;

-- id: pin-006
-- shape: pinned GROUP BY
SELECT kind, count(*), sum(weight) FROM events WHERE user_id = 33 GROUP BY kind ORDER BY kind NULLS FIRST;

-- id: pin-007
-- shape: colocated join pinned on the key
SELECT u.name, e.event_id, e.kind FROM users u JOIN events e ON e.user_id = u.user_id WHERE u.user_id = 21 ORDER BY e.event_id;

-- id: pin-008
-- shape: colocated join of orders and lineitem pinned on the key
SELECT o.o_orderkey, count(*), sum(l.l_quantity) FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey WHERE o.o_orderkey = 500 GROUP BY o.o_orderkey;

-- id: pin-009
-- shape: pinned join with a reference table
SELECT e.event_id, k.label FROM events e JOIN kinds k ON k.kind = e.kind WHERE e.user_id = 40 ORDER BY e.event_id;

-- id: pin-010
-- shape: pinned lineitem with reference supplier and nation
SELECT l.l_linenumber, s.s_name, n.n_name FROM lineitem l JOIN supplier s ON s.s_suppkey = l.l_suppkey JOIN nation n ON n.n_nationkey = s.s_nationkey WHERE l.l_orderkey = 1234 ORDER BY l.l_linenumber;

-- id: pin-011
-- shape: IN list of keys (several groups likely)
SELECT user_id, name FROM users WHERE user_id IN (1, 2, 3, 4, 5, 6, 7, 8) ORDER BY user_id;

-- id: pin-012
-- shape: IN list of one key
SELECT user_id, name FROM users WHERE user_id IN (9);

-- id: pin-013
-- shape: = ANY(array) of keys
SELECT o_orderkey, o_orderstatus FROM orders WHERE o_orderkey = ANY (ARRAY[10, 20, 30, 40]) ORDER BY o_orderkey;

-- id: pin-014
-- shape: text distribution key lookup
SELECT * FROM accounts WHERE code = 'acc-0042';

-- id: pin-015
-- shape: text key IN list
SELECT code, balance FROM accounts WHERE code IN ('acc-0001', 'acc-0002', 'acc-0150') ORDER BY code;

-- id: pin-016
-- shape: pinned key with an extra OR on another column (not pinned)
SELECT user_id FROM users WHERE user_id = 3 OR age = 30 ORDER BY user_id;

-- id: pin-017
-- shape: pinned key AND another predicate
SELECT event_id, amount FROM events WHERE user_id = 50 AND amount > 100 ORDER BY event_id;

-- id: pin-018
-- shape: pinned subquery on the same key
SELECT name FROM users WHERE user_id = 60 AND EXISTS (SELECT 1 FROM events WHERE events.user_id = 60);

-- id: pin-019
-- shape: pinned correlated subquery on a colocated table
SELECT u.user_id, (SELECT count(*) FROM events e WHERE e.user_id = u.user_id) AS n FROM users u WHERE u.user_id = 61;

-- id: pin-020
-- shape: pinned window function
SELECT event_id, amount, row_number() OVER (ORDER BY event_id) FROM events WHERE user_id = 70 ORDER BY event_id;

-- id: pin-021
-- shape: pinned CTE
WITH mine AS (SELECT * FROM events WHERE user_id = 71) SELECT kind, count(*) FROM mine GROUP BY kind ORDER BY kind NULLS LAST;

-- id: pin-022
-- shape: pinned DISTINCT
SELECT DISTINCT kind FROM events WHERE user_id = 72 ORDER BY kind NULLS LAST;

-- id: pin-023
-- shape: pinned ORDER BY + LIMIT/OFFSET
SELECT event_id FROM events WHERE user_id = 73 ORDER BY event_id LIMIT 3 OFFSET 1;

-- id: pin-024
-- shape: pinned string_agg/array_agg with ORDER BY inside
SELECT string_agg(kind, ',' ORDER BY event_id), array_agg(event_id ORDER BY event_id DESC) FROM events WHERE user_id = 74;

-- id: pin-025
-- shape: pinned key compared with a cast literal
SELECT user_id, name FROM users WHERE user_id = '75'::int;

-- id: pin-026
-- shape: pinned key written as bigint literal
SELECT o_orderkey FROM orders WHERE o_orderkey = 9999::bigint;

-- id: pin-027
-- shape: pinned key with BETWEEN on one value
SELECT user_id FROM users WHERE user_id BETWEEN 80 AND 80;

-- id: pin-028
-- shape: pinned UNION ALL of the same key
SELECT user_id, 'u' FROM users WHERE user_id = 81 UNION ALL SELECT user_id, kind FROM events WHERE user_id = 81 ORDER BY 2;

-- id: pin-029
-- shape: pinned join with a VALUES list
SELECT v.x, u.name FROM users u JOIN (VALUES (82, 'a'), (82, 'b')) v(id, x) ON v.id = u.user_id WHERE u.user_id = 82 ORDER BY v.x;

-- id: pin-030
-- shape: pinned lateral generate_series
SELECT u.user_id, g FROM users u, generate_series(1, 3) g WHERE u.user_id = 83 ORDER BY g;

-- id: pin-031
-- shape: pinned key NULL comparison matches nothing
SELECT * FROM users WHERE user_id = NULL;

-- id: pin-032
-- shape: pinned key on the empty table
SELECT * FROM empty_t WHERE id = 1;

-- id: pin-033
-- shape: pinned bool_and / bool_or / every
SELECT bool_and(ok), bool_or(ok), every(ok) FROM events WHERE user_id = 84;

-- id: pin-034
-- shape: pinned partsupp and part colocated join
SELECT p.p_name, ps.ps_suppkey, ps.ps_availqty FROM part p JOIN partsupp ps ON ps.ps_partkey = p.p_partkey WHERE p.p_partkey = 314 ORDER BY ps.ps_suppkey;

-- id: pin-035
-- shape: pinned customer lookup with reference nation
SELECT c_name, n_name FROM customer JOIN nation ON n_nationkey = c_nationkey WHERE c_custkey = 1000;

-- id: pin-036
-- shape: pinned percentile
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY weight), percentile_disc(0.5) WITHIN GROUP (ORDER BY amount) FROM events WHERE user_id = 85;

-- id: pin-037
-- shape: pinned count(DISTINCT)
SELECT count(DISTINCT kind) FROM events WHERE user_id = 86;

-- id: pin-038
-- shape: pinned HAVING
SELECT kind, count(*) FROM events WHERE user_id = 87 GROUP BY kind HAVING count(*) > 1 ORDER BY kind;

-- id: pin-039
-- shape: pinned join of orders and lineitem with the key on both sides
SELECT o.o_orderkey, l.l_linenumber FROM orders o, lineitem l WHERE o.o_orderkey = 321 AND l.l_orderkey = 321 ORDER BY 2;

-- id: pin-040
-- shape: pinned DISTINCT ON
SELECT DISTINCT ON (kind) kind, event_id FROM events WHERE user_id = 88 ORDER BY kind, event_id;

-- id: pin-041
-- shape: reference table alone
SELECT * FROM kinds ORDER BY rank;

-- id: pin-042
-- shape: reference tables joined and aggregated
SELECT r_name, count(*) FROM nation JOIN region ON r_regionkey = n_regionkey GROUP BY r_name ORDER BY r_name;

-- id: pin-043
-- shape: reference supplier aggregate
SELECT s_nationkey, count(*), sum(s_acctbal), avg(s_acctbal) FROM supplier GROUP BY s_nationkey ORDER BY s_nationkey;

-- id: pin-044
-- shape: local table alone (group 0)
SELECT count(*), min(note_id), max(note_id) FROM notes;

-- id: pin-045
-- shape: local table rows
SELECT * FROM notes WHERE user_id IS NULL ORDER BY note_id;

-- id: pin-046
-- shape: no table
SELECT 1 AS one, 'two'::text AS two, 3.0::numeric AS three, 0.1::float8 + 0.2::float8 AS f;

-- id: pin-047
-- shape: generate_series without tables
SELECT g, g * g FROM generate_series(1, 10) g ORDER BY g DESC;

-- id: pin-048
-- shape: local table joined with a reference table
SELECT n.note_id, k.label FROM notes n CROSS JOIN kinds k WHERE n.note_id <= 3 ORDER BY 1, 2;

-- id: pin-049
-- shape: reference table with a scalar subquery on another reference table
SELECT n_name FROM nation WHERE n_regionkey = (SELECT r_regionkey FROM region WHERE r_name = 'EUROPE') ORDER BY n_name;

-- id: pin-050
-- shape: pinned key through a parenthesised predicate and IS NOT DISTINCT FROM
SELECT user_id FROM users WHERE (user_id IS NOT DISTINCT FROM 90);

-- id: pin-051
-- shape: key zero
SELECT user_id, name FROM users WHERE user_id = 0;

-- id: pin-052
-- shape: negative key
SELECT user_id, name FROM users WHERE user_id = -7;

-- id: pin-053
-- shape: int4 maximum key
SELECT user_id, name FROM users WHERE user_id = 2147483647;

-- id: pin-054
-- shape: int4 minimum key
SELECT user_id, name FROM users WHERE user_id = -2147483648;

-- id: pin-055
-- shape: int4 minimum key as a parameter
-- params: ["-2147483648"]
SELECT user_id, name FROM users WHERE user_id = $1;

-- id: pin-056
-- shape: Cyrillic text key
SELECT code, owner FROM accounts WHERE code = 'ключ';

-- id: pin-057
-- shape: Latin text key with diacritics
SELECT code FROM accounts WHERE code = 'ünïcødé';

-- id: pin-058
-- shape: text key with an emoji and a space
SELECT code FROM accounts WHERE code = '🙂 smile';

-- id: pin-059
-- shape: empty text key
SELECT code, balance FROM accounts WHERE code = '';

-- id: pin-060
-- shape: text key with a quote
SELECT code FROM accounts WHERE code = 'it''s';

-- id: pin-061
-- shape: text key with leading and trailing spaces
SELECT code FROM accounts WHERE code = ' padded ';

-- id: pin-062
-- shape: text key differing only in case from another
SELECT code FROM accounts WHERE code = 'ACC-0001';

-- id: pin-063
-- shape: CJK text key as a parameter
-- params: ["東京"]
SELECT code FROM accounts WHERE code = $1;

-- id: pin-064
-- shape: text key with a Unicode escape string
SELECT code FROM accounts WHERE code = U&'\043A\043B\044E\0447';
