-- Window functions over whole distributed tables and CTEs without the key (incl. recursive):
-- the general path of issue #16.

-- id: win-001
-- shape: row_number over the whole table
SELECT user_id, row_number() OVER (ORDER BY user_id) FROM users ORDER BY user_id;

-- id: win-002
-- shape: rank/dense_rank with ties
SELECT user_id, age, rank() OVER (ORDER BY age), dense_rank() OVER (ORDER BY age) FROM users WHERE age IS NOT NULL ORDER BY user_id;

-- id: win-003
-- shape: PARTITION BY a non-key column
SELECT user_id, city, row_number() OVER (PARTITION BY city ORDER BY user_id) FROM users ORDER BY user_id;

-- id: win-004
-- shape: PARTITION BY the distribution key
SELECT user_id, event_id, sum(amount) OVER (PARTITION BY user_id ORDER BY event_id) FROM events WHERE user_id < 40 ORDER BY user_id, event_id;

-- id: win-005
-- shape: running sum over the whole table
SELECT o_orderkey, sum(o_totalprice) OVER (ORDER BY o_orderkey) FROM orders WHERE o_orderkey <= 300 ORDER BY o_orderkey;

-- id: win-006
-- shape: lag/lead
SELECT user_id, lag(name) OVER (ORDER BY user_id), lead(name, 2, 'none') OVER (ORDER BY user_id) FROM users ORDER BY user_id LIMIT 30;

-- id: win-007
-- shape: ntile and percent_rank/cume_dist (float)
SELECT user_id, ntile(4) OVER (ORDER BY user_id), percent_rank() OVER (ORDER BY user_id), cume_dist() OVER (ORDER BY user_id) FROM users ORDER BY user_id;

-- id: win-008
-- shape: first_value/last_value/nth_value with a frame
SELECT event_id, first_value(event_id) OVER w, last_value(event_id) OVER w, nth_value(event_id, 2) OVER w FROM events WHERE event_id <= 100 WINDOW w AS (ORDER BY event_id ROWS BETWEEN 2 PRECEDING AND 2 FOLLOWING) ORDER BY event_id;

-- id: win-009
-- shape: window aggregate without ORDER BY (whole partition)
SELECT kind, event_id, count(*) OVER (PARTITION BY kind) FROM events WHERE event_id <= 120 ORDER BY event_id;

-- id: win-010
-- shape: window over a GROUP BY result
SELECT kind, count(*), rank() OVER (ORDER BY count(*) DESC, kind) FROM events GROUP BY kind ORDER BY kind NULLS FIRST;

-- id: win-011
-- shape: RANGE frame with an offset
SELECT o_orderkey, o_orderdate, count(*) OVER (ORDER BY o_orderdate RANGE BETWEEN INTERVAL '3 days' PRECEDING AND CURRENT ROW) FROM orders WHERE o_orderkey <= 200 ORDER BY o_orderkey;

-- id: win-012
-- shape: GROUPS frame
SELECT user_id, age, sum(user_id) OVER (ORDER BY age GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM users WHERE age BETWEEN 20 AND 25 ORDER BY user_id;

-- id: win-013
-- shape: top-N per group through a window in a derived table
SELECT * FROM (SELECT city, user_id, row_number() OVER (PARTITION BY city ORDER BY score DESC NULLS LAST, user_id) AS rn FROM users) t WHERE rn <= 2 ORDER BY city NULLS FIRST, rn;

-- id: win-014
-- shape: window over float8 avg (tolerance)
SELECT kind, avg(weight) OVER (PARTITION BY kind) FROM events WHERE event_id <= 50 ORDER BY event_id;

-- id: win-015
-- shape: window with EXCLUDE CURRENT ROW
SELECT user_id, sum(user_id) OVER (ORDER BY user_id ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE CURRENT ROW) FROM users WHERE user_id <= 20 ORDER BY user_id;

-- id: cte-001
-- shape: CTE without the key
WITH big AS (SELECT * FROM orders WHERE o_totalprice > 400000) SELECT count(*), min(o_orderkey) FROM big;

-- id: cte-002
-- shape: CTE referenced twice
WITH c AS (SELECT city, count(*) AS n FROM users GROUP BY city) SELECT a.city, a.n FROM c a WHERE a.n = (SELECT max(n) FROM c);

-- id: cte-003
-- shape: CTE joined with a distributed table
WITH top AS (SELECT user_id FROM users WHERE age > 75) SELECT e.user_id, count(*) FROM events e JOIN top USING (user_id) GROUP BY e.user_id ORDER BY 1;

-- id: cte-004
-- shape: recursive CTE without tables
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 20) SELECT sum(n), count(*) FROM r;

-- id: cte-005
-- shape: recursive CTE walking a distributed table
WITH RECURSIVE chain(uid, depth) AS (SELECT 1, 0 UNION ALL SELECT u.user_id, c.depth + 1 FROM chain c JOIN users u ON u.user_id = c.uid * 2 WHERE c.depth < 8) SELECT * FROM chain ORDER BY depth;

-- id: cte-006
-- shape: recursive CTE over a reference table
WITH RECURSIVE k(kind, rank) AS (SELECT kind, rank FROM kinds WHERE rank = 1 UNION ALL SELECT kinds.kind, kinds.rank FROM kinds JOIN k ON kinds.rank = k.rank + 1) SELECT * FROM k ORDER BY rank;

-- id: cte-007
-- shape: MATERIALIZED CTE
WITH m AS MATERIALIZED (SELECT l_suppkey, sum(l_quantity) AS q FROM lineitem GROUP BY l_suppkey) SELECT count(*), sum(q) FROM m;

-- id: cte-008
-- shape: NOT MATERIALIZED CTE with a filter pushed in
WITH m AS NOT MATERIALIZED (SELECT * FROM events) SELECT event_id FROM m WHERE user_id = 5 ORDER BY event_id;

-- id: cte-009
-- shape: nested CTEs
WITH a AS (SELECT o_custkey, count(*) AS n FROM orders GROUP BY o_custkey), b AS (SELECT n, count(*) AS m FROM a GROUP BY n) SELECT * FROM b ORDER BY n;

-- id: cte-010
-- shape: CTE pinned inside, unpinned outside
WITH one AS (SELECT * FROM users WHERE user_id = 7) SELECT count(*) FROM events, one WHERE events.kind = 'buy';

-- id: cte-011
-- shape: CTE over a colocated join grouped by the key
WITH t AS (SELECT o_orderkey, sum(l_quantity) AS q FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY o_orderkey) SELECT count(*), max(q), min(q) FROM t;

-- id: cte-012
-- shape: recursive CTE with SEARCH DEPTH FIRST
WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n * 2 FROM t WHERE n < 64) SEARCH DEPTH FIRST BY n SET ord SELECT n FROM t ORDER BY ord;

-- id: cte-013
-- shape: data-modifying CTE is not in the corpus; a VALUES CTE joined to a distributed table
WITH v(id) AS (VALUES (3), (30), (300)) SELECT v.id, u.name FROM v LEFT JOIN users u ON u.user_id = v.id ORDER BY v.id;

-- id: cte-014
-- shape: CTE with window function
WITH r AS (SELECT o_custkey, o_orderkey, rank() OVER (PARTITION BY o_custkey ORDER BY o_totalprice DESC, o_orderkey) AS rk FROM orders) SELECT o_custkey, o_orderkey FROM r WHERE rk = 1 AND o_custkey < 40 ORDER BY o_custkey;

-- id: cte-015
-- shape: recursive CTE generating dates joined to orders
WITH RECURSIVE d(day) AS (SELECT date '1994-01-01' UNION ALL SELECT day + 1 FROM d WHERE day < date '1994-01-10') SELECT d.day, count(o_orderkey) FROM d LEFT JOIN orders ON o_orderdate = d.day GROUP BY d.day ORDER BY d.day;
