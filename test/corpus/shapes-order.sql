-- Ordering, limits and duplicates without the distribution key: ORDER BY (k-way merge),
-- LIMIT/OFFSET (pushed down as limit+offset), DISTINCT, DISTINCT ON, NULLS FIRST/LAST, ties.

-- id: ord-001
-- shape: ORDER BY a non-key column + LIMIT
SELECT user_id, name FROM users ORDER BY name LIMIT 10;

-- id: ord-002
-- shape: ORDER BY DESC + LIMIT/OFFSET
SELECT o_orderkey, o_totalprice FROM orders ORDER BY o_totalprice DESC, o_orderkey LIMIT 5 OFFSET 7;

-- id: ord-003
-- shape: ORDER BY the key, whole table
SELECT user_id, age FROM users ORDER BY user_id;

-- id: ord-004
-- shape: ORDER BY with NULLS FIRST
SELECT user_id, age FROM users ORDER BY age NULLS FIRST, user_id LIMIT 20;

-- id: ord-005
-- shape: ORDER BY with NULLS LAST DESC
SELECT user_id, city FROM users ORDER BY city DESC NULLS LAST, user_id DESC LIMIT 15;

-- id: ord-006
-- shape: ORDER BY an expression not in the select list
SELECT user_id FROM users ORDER BY age * 2 + user_id, user_id LIMIT 10;

-- id: ord-007
-- shape: ORDER BY a column position
SELECT name, joined FROM users ORDER BY 2, 1 LIMIT 12;

-- id: ord-008
-- shape: ORDER BY with ties (any order among equal keys)
SELECT kind, event_id FROM events WHERE event_id <= 200 ORDER BY kind NULLS FIRST;

-- id: ord-009
-- shape: LIMIT without ORDER BY on a count-stable query
SELECT count(*) FROM (SELECT 1 FROM lineitem LIMIT 100) t;

-- id: ord-010
-- shape: OFFSET past the end
SELECT user_id FROM users ORDER BY user_id OFFSET 1000;

-- id: ord-011
-- shape: LIMIT 0
SELECT * FROM users ORDER BY user_id LIMIT 0;

-- id: ord-012
-- shape: LIMIT ALL
SELECT user_id FROM users WHERE user_id < 30 ORDER BY user_id LIMIT ALL;

-- id: ord-013
-- shape: FETCH FIRST … WITH TIES
SELECT user_id, age FROM users ORDER BY age FETCH FIRST 5 ROWS WITH TIES;

-- id: ord-014
-- shape: ORDER BY a float column (tolerance) + LIMIT
SELECT event_id, weight FROM events WHERE weight IS NOT NULL ORDER BY weight, event_id LIMIT 10;

-- id: ord-015
-- shape: ORDER BY numeric DESC over a colocated join
SELECT l_orderkey, l_linenumber, l_extendedprice FROM lineitem JOIN orders ON o_orderkey = l_orderkey ORDER BY l_extendedprice DESC, l_orderkey, l_linenumber LIMIT 10;

-- id: ord-016
-- shape: DISTINCT on a non-key column
SELECT DISTINCT city FROM users;

-- id: ord-017
-- shape: DISTINCT with ORDER BY
SELECT DISTINCT l_shipmode FROM lineitem ORDER BY l_shipmode;

-- id: ord-018
-- shape: DISTINCT on two columns
SELECT DISTINCT l_returnflag, l_linestatus FROM lineitem ORDER BY 1, 2;

-- id: ord-019
-- shape: DISTINCT of the key
SELECT DISTINCT user_id FROM events WHERE amount > 990 ORDER BY user_id;

-- id: ord-020
-- shape: DISTINCT ON a non-key column
SELECT DISTINCT ON (city) city, user_id, name FROM users ORDER BY city, user_id;

-- id: ord-021
-- shape: DISTINCT ON with DESC inner order
SELECT DISTINCT ON (kind) kind, event_id, amount FROM events WHERE amount IS NOT NULL ORDER BY kind, amount DESC, event_id;

-- id: ord-022
-- shape: DISTINCT ON the key
SELECT DISTINCT ON (user_id) user_id, event_id FROM events ORDER BY user_id, event_id LIMIT 25;

-- id: ord-023
-- shape: DISTINCT + LIMIT
SELECT DISTINCT o_orderpriority FROM orders ORDER BY o_orderpriority LIMIT 3;

-- id: ord-024
-- shape: ORDER BY on a text key
SELECT code FROM accounts ORDER BY code DESC LIMIT 7;

-- id: ord-025
-- shape: ORDER BY a boolean then key
SELECT event_id, ok FROM events WHERE event_id < 60 ORDER BY ok NULLS FIRST, event_id;

-- id: ord-026
-- shape: whole-table scan without ORDER BY (multiset)
SELECT * FROM users;

-- id: ord-027
-- shape: whole-table scan of lineitem projected
SELECT l_orderkey, l_linenumber, l_quantity FROM lineitem WHERE l_quantity = 50;

-- id: ord-028
-- shape: ORDER BY an aggregate over GROUP BY + LIMIT
SELECT o_custkey, sum(o_totalprice) AS t FROM orders GROUP BY o_custkey ORDER BY t DESC, o_custkey LIMIT 10;

-- id: ord-029
-- shape: ORDER BY random() is not compared (count only)
SELECT count(*) FROM (SELECT user_id FROM users ORDER BY random() LIMIT 10) t;

-- id: ord-030
-- shape: ORDER BY with COLLATE "C"
SELECT name FROM users WHERE user_id % 37 = 0 ORDER BY name COLLATE "C" DESC;

-- id: ord-031
-- shape: ORDER BY date + key with OFFSET only
SELECT user_id, joined FROM users ORDER BY joined, user_id OFFSET 390;

-- id: ord-032
-- shape: row-value comparison for keyset pagination
SELECT o_orderkey, o_orderdate FROM orders WHERE (o_orderdate, o_orderkey) > (date '1995-06-01', 100) ORDER BY o_orderdate, o_orderkey LIMIT 8;

-- id: ord-033
-- shape: DISTINCT over an array column
SELECT DISTINCT tags FROM events ORDER BY tags LIMIT 10;

-- id: ord-034
-- shape: ORDER BY USING operator
SELECT user_id FROM users WHERE user_id < 20 ORDER BY user_id USING >;

-- id: ord-035
-- shape: LIMIT with a parameter-like expression
SELECT user_id FROM users ORDER BY user_id LIMIT (2 + 3) OFFSET (1 * 2);
