-- Queries adapted from PostgreSQL's own regression tests (src/test/regress/sql/aggregates.sql,
-- select_distinct.sql, window.sql, with.sql, subselect.sql, join.sql): the same constructs,
-- rewritten over the corpus tables (users stands in for tenk1/empsalary; orders and lineitem
-- for larger ones), with orders made total where the original relied on a single node's order.

-- id: rg-agg-01
-- shape: aggregates.sql: avg/sum/max over a filtered table with aliases
SELECT avg(age) AS avg_1, sum(age) AS sum_2, max(age) AS max_3, min(age) AS min_4 FROM users WHERE age < 60;

-- id: rg-agg-02
-- shape: aggregates.sql: stddev_pop/var_samp on numeric and float
SELECT stddev_pop(l_quantity), stddev_samp(l_quantity), var_pop(l_discount), var_samp(score) FROM lineitem, (SELECT avg(score) AS score FROM users) s WHERE l_orderkey < 100;

-- id: rg-agg-03
-- shape: aggregates.sql: count(*) FILTER vs count(column) with CASE
SELECT count(*) FILTER (WHERE age > 50) AS f, count(CASE WHEN age > 50 THEN 1 END) AS c FROM users;

-- id: rg-agg-04
-- shape: aggregates.sql: aggregate with ORDER BY and DISTINCT inside
SELECT array_agg(DISTINCT kind ORDER BY kind NULLS FIRST), string_agg(DISTINCT city, ',' ORDER BY city) FROM events JOIN users USING (user_id);

-- id: rg-agg-05
-- shape: aggregates.sql: GROUP BY with an outer reference in HAVING-like subquery
SELECT city, (SELECT count(*) FROM users u2 WHERE u2.city = u.city AND u2.age > max(u.age) - 10) FROM users u WHERE city IS NOT NULL GROUP BY city ORDER BY city;

-- id: rg-agg-06
-- shape: aggregates.sql: min/max on the key use the index per shard
SELECT min(o_orderkey), max(o_orderkey), max(o_orderkey) - min(o_orderkey) FROM orders;

-- id: rg-agg-07
-- shape: aggregates.sql: max of the key with a filter and ORDER BY the aggregate
SELECT max(user_id) FROM users WHERE user_id < 399 ORDER BY max(user_id);

-- id: rg-agg-08
-- shape: aggregates.sql: grouping by an expression of the key
SELECT user_id % 5 AS m, count(*), sum(user_id) FROM users GROUP BY user_id % 5 ORDER BY 1;

-- id: rg-agg-09
-- shape: aggregates.sql: ordered-set aggregates with several fractions
SELECT percentile_disc(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY o_totalprice) FROM orders;

-- id: rg-agg-10
-- shape: aggregates.sql: hypothetical-set aggregates
SELECT rank(50) WITHIN GROUP (ORDER BY age), dense_rank(50) WITHIN GROUP (ORDER BY age), percent_rank(50) WITHIN GROUP (ORDER BY age) FROM users;

-- id: rg-agg-11
-- shape: aggregates.sql: aggregate in ORDER BY of a grouped query
SELECT city, count(*) FROM users GROUP BY city ORDER BY count(*) DESC, city NULLS LAST;

-- id: rg-agg-12
-- shape: aggregates.sql: aggregate of a subquery result
SELECT sum(n) FROM (SELECT count(*) AS n FROM events GROUP BY kind) t;

-- id: rg-dist-01
-- shape: select_distinct.sql: DISTINCT over several columns of a derived table
SELECT DISTINCT two, four FROM (SELECT user_id % 2 AS two, user_id % 4 AS four FROM users) t ORDER BY 1, 2;

-- id: rg-dist-02
-- shape: select_distinct.sql: DISTINCT ON with an expression
SELECT DISTINCT ON (user_id % 10) user_id % 10 AS d, user_id FROM users ORDER BY user_id % 10, user_id DESC;

-- id: rg-dist-03
-- shape: select_distinct.sql: count(DISTINCT) over a derived DISTINCT
SELECT count(*) FROM (SELECT DISTINCT age FROM users) t;

-- id: rg-dist-04
-- shape: select_distinct.sql: IS DISTINCT FROM with NULLs
SELECT count(*) FILTER (WHERE age IS DISTINCT FROM NULL), count(*) FILTER (WHERE age IS NOT DISTINCT FROM NULL) FROM users;

-- id: rg-win-01
-- shape: window.sql: sum OVER (PARTITION BY) ordered by partition and value
SELECT city, user_id, age, sum(age) OVER (PARTITION BY city) FROM users ORDER BY city NULLS FIRST, user_id;

-- id: rg-win-02
-- shape: window.sql: rank OVER a named window, ordered by the window function
SELECT city, user_id, age, rank() OVER w FROM users WINDOW w AS (PARTITION BY city ORDER BY age) ORDER BY rank() OVER w, user_id;

-- id: rg-win-03
-- shape: window.sql: sum(sum()) OVER with GROUP BY
SELECT ten, two, sum(age) AS gsum, sum(sum(age)) OVER (PARTITION BY two ORDER BY ten) AS wsum FROM (SELECT user_id % 10 AS ten, user_id % 2 AS two, age FROM users) s GROUP BY ten, two ORDER BY ten, two;

-- id: rg-win-04
-- shape: window.sql: count(*) OVER () with a filter
SELECT count(*) OVER () FROM users WHERE user_id < 10;

-- id: rg-win-05
-- shape: window.sql: window over an empty set
SELECT count(*) OVER (PARTITION BY v) FROM empty_t;

-- id: rg-win-06
-- shape: window.sql: frame RANGE BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE GROUP
SELECT user_id, sum(user_id) OVER (ORDER BY user_id / 3 RANGE BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE GROUP) FROM users WHERE user_id < 20 ORDER BY user_id;

-- id: rg-win-07
-- shape: window.sql: RANGE offset frame on an integer
SELECT user_id, sum(user_id) OVER (ORDER BY user_id RANGE BETWEEN 5 PRECEDING AND 6 FOLLOWING) FROM users WHERE user_id < 30 ORDER BY user_id;

-- id: rg-win-08
-- shape: window.sql: RANGE interval frame on a date
SELECT user_id, joined, count(*) OVER (ORDER BY joined RANGE BETWEEN '30 days'::interval PRECEDING AND '30 days'::interval FOLLOWING) FROM users WHERE user_id < 40 ORDER BY user_id;

-- id: rg-win-09
-- shape: window.sql: first_value/nth_value/last_value with UNBOUNDED FOLLOWING
SELECT user_id, first_value(user_id) OVER w, nth_value(user_id, 2) OVER w, last_value(user_id) OVER w FROM users WHERE user_id < 12 WINDOW w AS (ORDER BY user_id RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) ORDER BY user_id;

-- id: rg-win-10
-- shape: window.sql: window function over an aggregate ordered by aggregates
SELECT user_id % 10 AS ten, sum(user_id) + sum(coalesce(age, 0)) AS res, rank() OVER (ORDER BY sum(user_id) + sum(coalesce(age, 0))) FROM users GROUP BY 1 ORDER BY 1;

-- id: rg-win-11
-- shape: window.sql: several windows in one query
SELECT kind, sum(amount), row_number() OVER (ORDER BY kind NULLS FIRST), sum(sum(amount)) OVER (ORDER BY kind DESC NULLS LAST) FROM events GROUP BY kind ORDER BY kind NULLS FIRST;

-- id: rg-with-01
-- shape: with.sql: recursive sum of 1..100
WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 100) SELECT sum(n) FROM t;

-- id: rg-with-02
-- shape: with.sql: recursive with UNION (dedup) over a distributed table
WITH RECURSIVE t(age) AS (SELECT min(age) FROM users UNION SELECT (SELECT min(age) FROM users WHERE age > t.age) FROM t WHERE t.age IS NOT NULL) SELECT count(*) FROM t WHERE age IS NOT NULL;

-- id: rg-with-03
-- shape: with.sql: CTE used in a subquery expression
WITH q AS (SELECT max(o_totalprice) AS m FROM orders) SELECT o_orderkey FROM orders WHERE o_totalprice = (SELECT m FROM q);

-- id: rg-with-04
-- shape: with.sql: recursive CTE with CYCLE detection
WITH RECURSIVE g(id, link) AS (VALUES (1, 2), (2, 3), (3, 1), (4, 5)), s(id, depth) AS (SELECT g.id, 0 FROM g WHERE id = 1 UNION ALL SELECT g.link, s.depth + 1 FROM s JOIN g ON g.id = s.id) CYCLE id SET is_cycle USING path SELECT id, depth, is_cycle FROM s ORDER BY depth;

-- id: rg-with-05
-- shape: with.sql: CTE shadowing a table name
WITH users AS (SELECT 1 AS user_id, 'shadow' AS name) SELECT * FROM users;

-- id: rg-sub-01
-- shape: subselect.sql: IN with a correlated subquery
SELECT user_id FROM users u WHERE age IN (SELECT age FROM users u2 WHERE u2.city = u.city AND u2.user_id <> u.user_id) AND user_id < 50 ORDER BY 1;

-- id: rg-sub-02
-- shape: subselect.sql: NOT IN with NULLs in the subquery gives no rows
SELECT count(*) FROM users WHERE user_id NOT IN (SELECT owner FROM accounts);

-- id: rg-sub-03
-- shape: subselect.sql: row comparison against a subquery
SELECT count(*) FROM orders WHERE (o_custkey, o_orderpriority) IN (SELECT c_custkey, '1-URGENT' FROM customer WHERE c_mktsegment = 'HOUSEHOLD');

-- id: rg-sub-04
-- shape: subselect.sql: scalar subquery in ORDER BY
SELECT user_id FROM users WHERE user_id < 10 ORDER BY (SELECT count(*) FROM events e WHERE e.user_id = users.user_id) DESC, user_id;

-- id: rg-sub-05
-- shape: subselect.sql: EXISTS with LIMIT inside
SELECT count(*) FROM users u WHERE EXISTS (SELECT 1 FROM events e WHERE e.user_id = u.user_id LIMIT 1);

-- id: rg-sub-06
-- shape: subselect.sql: ARRAY(subquery)
SELECT ARRAY(SELECT kind FROM kinds ORDER BY rank DESC);

-- id: rg-join-01
-- shape: join.sql: LEFT JOIN with a condition on the nullable side in ON
SELECT u.user_id, e.event_id FROM users u LEFT JOIN events e ON e.user_id = u.user_id AND e.amount > 990 WHERE u.user_id < 30 ORDER BY 1, 2;

-- id: rg-join-02
-- shape: join.sql: LEFT JOIN with the condition in WHERE (turns inner)
SELECT count(*) FROM users u LEFT JOIN events e ON e.user_id = u.user_id WHERE e.amount > 990;

-- id: rg-join-03
-- shape: join.sql: FULL JOIN USING with COALESCE of the merged column
SELECT user_id, count(*) FROM (SELECT user_id FROM users WHERE age = 30) a FULL JOIN (SELECT user_id FROM events WHERE kind = 'like' AND user_id < 60) b USING (user_id) GROUP BY user_id ORDER BY 1;

-- id: rg-join-04
-- shape: join.sql: join of three with mixed outer joins
SELECT count(*) FROM customer c LEFT JOIN orders o ON o.o_custkey = c.c_custkey LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey AND l.l_linenumber = 1;

-- id: rg-join-05
-- shape: join.sql: semi-join via IN on a non-key column
SELECT count(*) FROM part WHERE p_partkey IN (SELECT l_partkey FROM lineitem WHERE l_quantity = 1);

-- id: rg-join-06
-- shape: join.sql: join with a lateral function call
SELECT u.user_id, x FROM users u, LATERAL generate_series(1, u.user_id % 3) x WHERE u.user_id < 10 ORDER BY 1, 2;

-- id: rg-sub-07
-- shape: subselect.sql: constant IN / NOT IN subqueries without tables
SELECT 1 AS one WHERE 1 IN (SELECT 1) UNION ALL SELECT 0 WHERE 1 NOT IN (SELECT 1);

-- id: rg-sub-08
-- shape: subselect.sql: extra parentheses around subqueries and set operations
SELECT * FROM (SELECT 1 AS x) ss, (SELECT * FROM ((SELECT 2 AS y)) i) tt;

-- id: rg-sub-09
-- shape: subselect.sql: subscripting a scalar subquery's array
SELECT (SELECT ARRAY[1, 2, 3])[1], ((SELECT ARRAY[1, 2, 3]))[2];

-- id: rg-sub-10
-- shape: subselect.sql: uncorrelated nested IN on a distributed table
SELECT count(*) FROM users WHERE age IN (SELECT age FROM users WHERE user_id IN (SELECT user_id FROM events WHERE kind = 'share'));

-- id: rg-sub-11
-- shape: subselect.sql: (a, b) NOT IN (subquery) with NULLs excluded
SELECT count(*) FROM events WHERE (user_id, kind) NOT IN (SELECT user_id, kind FROM events WHERE kind IS NOT NULL AND event_id < 2000);

-- id: rg-sub-12
-- shape: subselect.sql: correlated IN with the outer alias in the inner WHERE
SELECT user_id FROM users up WHERE age IN (SELECT age FROM users WHERE user_id = up.user_id::bigint + 1) ORDER BY 1;

-- id: rg-sub-13
-- shape: subselect.sql: ROW() = (SELECT …) per row
SELECT user_id, ROW(1, 2) = (SELECT user_id % 3, 2) AS eq FROM users WHERE user_id < 10 ORDER BY 1;

-- id: rg-sub-14
-- shape: subselect.sql: subquery without an alias (PostgreSQL 16+), aggregated
SELECT count(*) FROM (SELECT DISTINCT name FROM users) AS s;

-- id: rg-sub-15
-- shape: subselect.sql: float8(count(*)) / scalar count subquery per group
SELECT kind, float8(count(*)) / (SELECT count(*) FROM events) FROM events GROUP BY kind ORDER BY kind NULLS FIRST;

-- id: rg-sub-16
-- shape: subselect.sql: IN (SELECT DISTINCT …) inside a derived table, counted
SELECT count(DISTINCT ss.kind) FROM (SELECT kind FROM events a WHERE user_id IN (SELECT DISTINCT age FROM users b)) ss;

-- id: rg-sub-17
-- shape: subselect.sql: IN over a UNION of a distributed table with itself
SELECT count(*) FROM users WHERE user_id IN (SELECT user_id FROM events WHERE kind = 'buy' UNION SELECT user_id FROM events WHERE kind = 'view');

-- id: rg-sub-18
-- shape: subselect.sql: correlated sum subquery in a derived table
SELECT user_id, ss1 FROM (SELECT user_id, (SELECT sum(u2.user_id) FROM users u2 WHERE u2.user_id >= a.user_id AND u2.user_id < 20) AS ss1 FROM users a WHERE a.user_id < 20) ss ORDER BY 1;

-- id: rg-sub-19
-- shape: subselect.sql: max over a filtered EXISTS, in a derived table
SELECT * FROM (SELECT max(user_id) FROM users a WHERE EXISTS (SELECT 1 FROM events b WHERE b.user_id = a.user_id AND b.kind = 'refund')) ss;

-- id: rg-sub-20
-- shape: subselect.sql: float IN (numeric subquery) cross-type
SELECT count(*) FROM events WHERE weight IN (SELECT amount FROM events WHERE amount < 10);

-- id: rg-sub-21
-- shape: subselect.sql: whole-row reference of a subquery
SELECT q FROM (SELECT max(user_id) FROM users GROUP BY city ORDER BY city NULLS FIRST) q;

-- id: rg-sub-22
-- shape: subselect.sql: = ANY of an aggregate compared with = ANY (SELECT false)
SELECT (1 = any (array_agg(user_id))) = any (SELECT false) FROM users;

-- id: rg-join-07
-- shape: join.sql: CROSS JOIN counted with a filter across both sides
SELECT count(*) FROM kinds a CROSS JOIN kinds b WHERE a.rank < b.rank;

-- id: rg-join-08
-- shape: join.sql: JOIN … USING (col) AS alias (PostgreSQL 14+)
SELECT j.user_id, count(*) FROM users JOIN events USING (user_id) AS j WHERE j.user_id < 5 GROUP BY j.user_id ORDER BY 1;

-- id: rg-join-09
-- shape: join.sql: LEFT JOIN ON false keeps every left row
SELECT count(*), count(e.event_id) FROM users u LEFT JOIN events e ON false;

-- id: rg-join-10
-- shape: join.sql: FULL JOIN on an offset equality (unmatched rows on both sides)
SELECT a.rank, b.rank FROM (SELECT * FROM kinds) a FULL JOIN (SELECT * FROM kinds) b ON a.rank = b.rank + 3 ORDER BY 1, 2;

-- id: rg-join-11
-- shape: join.sql: LEFT JOIN LATERAL with an aggregate per row
SELECT u.user_id, x.n FROM users u LEFT JOIN LATERAL (SELECT count(*) AS n FROM events e WHERE e.user_id = u.user_id AND e.kind = 'like') x ON true WHERE u.user_id < 12 ORDER BY 1;

-- id: rg-join-12
-- shape: join.sql: join removal candidate (LEFT JOIN to a unique key, unused)
SELECT count(*) FROM events e LEFT JOIN users u ON u.user_id = e.user_id;

-- id: rg-join-13
-- shape: join.sql: anti-join by NOT EXISTS on a non-colocated table
SELECT count(*) FROM part p WHERE NOT EXISTS (SELECT 1 FROM lineitem l WHERE l.l_partkey = p.p_partkey);

-- id: rg-join-14
-- shape: join.sql: nested outer joins with a WHERE on the innermost
SELECT count(*) FROM customer c LEFT JOIN (orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey) ON o.o_custkey = c.c_custkey WHERE l.l_quantity IS NULL OR l.l_quantity > 49;

-- id: rg-join-15
-- shape: join.sql: join of a VALUES list and generate_series
SELECT v.a, g FROM (VALUES (1), (2)) v(a) JOIN generate_series(1, 3) g ON g >= v.a ORDER BY 1, 2;

-- id: rg-with-06
-- shape: with.sql: recursive CTE with a search breadth first
WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SEARCH BREADTH FIRST BY n SET seq SELECT n FROM t ORDER BY seq;

-- id: rg-with-07
-- shape: with.sql: CTE referenced in a subquery of another CTE
WITH a AS (SELECT city FROM users WHERE age > 70), b AS (SELECT count(*) AS n FROM users WHERE city IN (SELECT city FROM a)) SELECT n FROM b;

-- id: rg-with-08
-- shape: with.sql: recursive tree over a VALUES list with depth
WITH RECURSIVE tree(id, parent, depth) AS (SELECT 1, NULL::int, 0 UNION ALL SELECT v.id, v.parent, t.depth + 1 FROM (VALUES (2, 1), (3, 1), (4, 2), (5, 4)) v(id, parent) JOIN tree t ON v.parent = t.id) SELECT id, depth FROM tree ORDER BY id;

-- id: rg-win-12
-- shape: window.sql: empty OVER () and a named empty window
SELECT count(*) OVER (), count(*) OVER w FROM users WHERE user_id < 10 WINDOW w AS ();

-- id: rg-win-13
-- shape: window.sql: lag with an offset column and a default
SELECT user_id, lag(user_id, user_id % 3, 0) OVER (ORDER BY user_id) FROM users WHERE user_id < 15 ORDER BY user_id;

-- id: rg-win-14
-- shape: window.sql: window over a derived DISTINCT with a RANGE frame to UNBOUNDED FOLLOWING
SELECT four, ten, sum(ten) OVER (PARTITION BY four ORDER BY ten RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) FROM (SELECT DISTINCT user_id % 4 AS four, user_id % 10 AS ten FROM users) ss ORDER BY four, ten;

-- id: rg-agg-13
-- shape: aggregates.sql: aggregates over a VALUES list with NULLs
SELECT sum(x), avg(x), count(x), count(*) FROM (VALUES (1), (NULL), (3)) v(x);

-- id: rg-agg-14
-- shape: aggregates.sql: string_agg with a NULL delimiter and array_agg of arrays
SELECT string_agg(kind, NULL ORDER BY kind), array_agg(ARRAY[rank, rank * 2] ORDER BY rank) FROM kinds;

-- id: rg-agg-15
-- shape: aggregates.sql: min/max of an array column
SELECT min(tags), max(tags) FROM events;
