-- Subqueries (scalar, IN, EXISTS, correlated, LATERAL, ANY/ALL) and set operations without the
-- distribution key.

-- id: sub-001
-- shape: scalar subquery in the select list
SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM events) AS events;

-- id: sub-002
-- shape: scalar subquery in WHERE
SELECT user_id, age FROM users WHERE age = (SELECT max(age) FROM users) ORDER BY user_id;

-- id: sub-003
-- shape: IN subquery on a non-key column
SELECT count(*) FROM events WHERE kind IN (SELECT kind FROM kinds WHERE rank <= 2);

-- id: sub-004
-- shape: IN subquery on the key from another distributed table
SELECT user_id, name FROM users WHERE user_id IN (SELECT user_id FROM events WHERE amount > 995) ORDER BY user_id;

-- id: sub-005
-- shape: NOT IN subquery (NULL semantics)
SELECT count(*) FROM users WHERE age NOT IN (SELECT age FROM users WHERE city = 'Lima');

-- id: sub-006
-- shape: NOT IN subquery without NULLs
SELECT count(*) FROM users WHERE user_id NOT IN (SELECT user_id FROM events);

-- id: sub-007
-- shape: EXISTS correlated on the key (colocated)
SELECT count(*) FROM users u WHERE EXISTS (SELECT 1 FROM events e WHERE e.user_id = u.user_id AND e.kind = 'refund');

-- id: sub-008
-- shape: NOT EXISTS correlated on the key
SELECT u.user_id FROM users u WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = u.user_id) ORDER BY 1;

-- id: sub-009
-- shape: EXISTS correlated on a non-key column
SELECT count(*) FROM customer c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.o_custkey = c.c_custkey AND o.o_orderpriority = '1-URGENT');

-- id: sub-010
-- shape: correlated scalar subquery per row
SELECT u.user_id, (SELECT max(amount) FROM events e WHERE e.user_id = u.user_id) FROM users u WHERE u.user_id <= 25 ORDER BY 1;

-- id: sub-011
-- shape: correlated scalar subquery across non-colocated tables
SELECT c_custkey, (SELECT count(*) FROM orders WHERE o_custkey = c_custkey) FROM customer WHERE c_custkey <= 20 ORDER BY 1;

-- id: sub-012
-- shape: = ANY (subquery)
SELECT count(*) FROM lineitem WHERE l_partkey = ANY (SELECT p_partkey FROM part WHERE p_size = 1);

-- id: sub-013
-- shape: > ALL (subquery)
SELECT o_orderkey FROM orders WHERE o_totalprice > ALL (SELECT o_totalprice FROM orders WHERE o_orderkey <> 1 AND o_orderpriority = '1-URGENT') ORDER BY 1;

-- id: sub-014
-- shape: LATERAL subquery with LIMIT per row
SELECT u.user_id, l.event_id FROM users u CROSS JOIN LATERAL (SELECT event_id FROM events e WHERE e.user_id = u.user_id ORDER BY event_id LIMIT 2) l WHERE u.user_id <= 15 ORDER BY 1, 2;

-- id: sub-015
-- shape: derived table with aggregate joined back
SELECT u.user_id, t.n FROM users u JOIN (SELECT user_id, count(*) AS n FROM events GROUP BY user_id) t ON t.user_id = u.user_id WHERE t.n > 16 ORDER BY 1;

-- id: sub-016
-- shape: subquery in FROM with ORDER BY + LIMIT, outer aggregate
SELECT sum(o_totalprice) FROM (SELECT o_totalprice FROM orders ORDER BY o_totalprice DESC, o_orderkey LIMIT 50) t;

-- id: sub-017
-- shape: IN subquery with GROUP BY/HAVING
SELECT count(*) FROM customer WHERE c_custkey IN (SELECT o_custkey FROM orders GROUP BY o_custkey HAVING count(*) > 12);

-- id: sub-018
-- shape: scalar subquery returning no row (NULL)
SELECT (SELECT name FROM users WHERE user_id = -1) IS NULL AS none;

-- id: sub-019
-- shape: scalar subquery with more than one row (error 21000)
SELECT (SELECT user_id FROM users WHERE age = 30);

-- id: sub-020
-- shape: EXISTS uncorrelated
SELECT count(*) FROM users WHERE EXISTS (SELECT 1 FROM empty_t);

-- id: set-001
-- shape: UNION of two distributed tables
SELECT user_id FROM users WHERE age > 70 UNION SELECT user_id FROM events WHERE amount > 990 ORDER BY 1;

-- id: set-002
-- shape: UNION ALL (multiset)
SELECT kind FROM events WHERE event_id < 30 UNION ALL SELECT kind FROM kinds;

-- id: set-003
-- shape: INTERSECT
SELECT user_id FROM users WHERE city = 'Oslo' INTERSECT SELECT user_id FROM events WHERE kind = 'buy' ORDER BY 1;

-- id: set-004
-- shape: EXCEPT
SELECT user_id FROM users EXCEPT SELECT user_id FROM events ORDER BY 1;

-- id: set-005
-- shape: EXCEPT ALL / INTERSECT ALL
SELECT kind FROM events WHERE user_id < 100 EXCEPT ALL SELECT kind FROM events WHERE user_id < 50 INTERSECT ALL SELECT kind FROM kinds;

-- id: set-006
-- shape: UNION with ORDER BY + LIMIT over the union
SELECT o_orderkey AS k FROM orders WHERE o_orderkey < 20 UNION SELECT c_custkey FROM customer WHERE c_custkey < 25 ORDER BY k DESC LIMIT 10;

-- id: set-007
-- shape: UNION of aggregates
SELECT 'users' AS t, count(*) FROM users UNION ALL SELECT 'events', count(*) FROM events UNION ALL SELECT 'orders', count(*) FROM orders ORDER BY 1;

-- id: set-008
-- shape: set operation inside a derived table, aggregated
SELECT count(*) FROM (SELECT l_suppkey FROM lineitem UNION SELECT s_suppkey FROM supplier) t;

-- id: set-009
-- shape: UNION of a pinned and an unpinned branch
SELECT user_id FROM users WHERE user_id = 5 UNION SELECT user_id FROM users WHERE age = 19 ORDER BY 1;

-- id: set-010
-- shape: UNION with a local table
SELECT user_id FROM notes WHERE user_id IS NOT NULL UNION SELECT user_id FROM users WHERE age = 44 ORDER BY 1;

-- id: set-011
-- shape: VALUES list alone
SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, NULL)) v(x, y) ORDER BY x;

-- id: set-012
-- shape: INTERSECT of text keys
SELECT code FROM accounts WHERE balance > 5000 INTERSECT SELECT code FROM accounts WHERE owner < 200 ORDER BY code;
