-- Joins without the key: colocated joins on the distribution column (each group joins its own
-- shards), non-colocated joins (rows must meet across groups), joins with reference and local
-- tables, outer joins, generate_series joins.

-- id: join-001
-- shape: colocated join on the key, unpinned
SELECT count(*), sum(e.amount) FROM users u JOIN events e ON e.user_id = u.user_id;

-- id: join-002
-- shape: colocated join grouped by a non-key column
SELECT u.city, count(*) FROM users u JOIN events e ON e.user_id = u.user_id GROUP BY u.city ORDER BY 1 NULLS FIRST;

-- id: join-003
-- shape: colocated LEFT JOIN (users without events)
SELECT u.user_id, count(e.event_id) FROM users u LEFT JOIN events e ON e.user_id = u.user_id GROUP BY u.user_id HAVING count(e.event_id) = 0 ORDER BY 1;

-- id: join-004
-- shape: colocated RIGHT JOIN (events without users)
SELECT count(*) FROM users u RIGHT JOIN events e ON e.user_id = u.user_id WHERE u.user_id IS NULL;

-- id: join-005
-- shape: colocated FULL JOIN
SELECT count(*), count(u.user_id), count(e.event_id) FROM users u FULL JOIN events e ON e.user_id = u.user_id;

-- id: join-006
-- shape: colocated join USING
SELECT user_id, name, event_id FROM users JOIN events USING (user_id) WHERE event_id < 40 ORDER BY event_id;

-- id: join-007
-- shape: non-colocated join on a non-key column
SELECT count(*) FROM orders JOIN customer ON c_custkey = o_custkey WHERE c_mktsegment = 'MACHINERY';

-- id: join-008
-- shape: non-colocated join of lineitem and part
SELECT p_brand, count(*) FROM lineitem JOIN part ON p_partkey = l_partkey WHERE p_size = 7 GROUP BY p_brand ORDER BY 1;

-- id: join-009
-- shape: non-colocated join of distributed tables with different keys (text key)
SELECT a.code, u.name FROM accounts a JOIN users u ON u.user_id = a.owner WHERE a.balance > 9500 ORDER BY a.code;

-- id: join-010
-- shape: join with a reference table, unpinned
SELECT k.label, count(*) FROM events e JOIN kinds k ON k.kind = e.kind GROUP BY k.label ORDER BY 1;

-- id: join-011
-- shape: LEFT JOIN to a reference table (kinds without a row for refund)
SELECT e.kind, k.label, count(*) FROM events e LEFT JOIN kinds k ON k.kind = e.kind GROUP BY e.kind, k.label ORDER BY 1 NULLS FIRST;

-- id: join-012
-- shape: reference table LEFT JOIN distributed table
SELECT k.kind, count(e.event_id) FROM kinds k LEFT JOIN events e ON e.kind = k.kind GROUP BY k.kind ORDER BY 1;

-- id: join-013
-- shape: join with a local table
SELECT n.note_id, u.name FROM notes n JOIN users u ON u.user_id = n.user_id ORDER BY n.note_id;

-- id: join-014
-- shape: join with a local table, aggregated
SELECT count(*) FROM events e JOIN notes n ON n.user_id = e.user_id;

-- id: join-015
-- shape: join with generate_series
SELECT g, count(u.user_id) FROM generate_series(18, 25) g LEFT JOIN users u ON u.age = g GROUP BY g ORDER BY g;

-- id: join-016
-- shape: generate_series of keys joined to a distributed table
SELECT count(*) FROM generate_series(1, 500) g JOIN orders ON o_orderkey = g;

-- id: join-017
-- shape: self-join on a non-key column
SELECT count(*) FROM users a JOIN users b ON a.age = b.age AND a.user_id < b.user_id;

-- id: join-018
-- shape: self-join on the key
SELECT count(*) FROM orders a JOIN orders b ON a.o_orderkey = b.o_orderkey;

-- id: join-019
-- shape: cross join with a reference table, counted
SELECT count(*) FROM users CROSS JOIN region;

-- id: join-020
-- shape: anti-join by LEFT JOIN … IS NULL, non-colocated
SELECT count(*) FROM customer LEFT JOIN orders ON o_custkey = c_custkey WHERE o_orderkey IS NULL;

-- id: join-021
-- shape: join on an inequality
SELECT count(*) FROM kinds k JOIN events e ON e.amount > k.rank * 900 WHERE e.event_id < 500;

-- id: join-022
-- shape: three colocated tables (part, partsupp) and a reference
SELECT s.s_nationkey, count(*) FROM part p JOIN partsupp ps ON ps.ps_partkey = p.p_partkey JOIN supplier s ON s.s_suppkey = ps.ps_suppkey WHERE p.p_size < 5 GROUP BY 1 ORDER BY 1;

-- id: join-023
-- shape: NATURAL JOIN
SELECT count(*) FROM users NATURAL JOIN events;

-- id: join-024
-- shape: join of a distributed table with the empty table
SELECT u.user_id FROM users u JOIN empty_t t ON t.id = u.user_id;

-- id: join-025
-- shape: LEFT JOIN with the empty table
SELECT count(*), count(t.v) FROM users u LEFT JOIN empty_t t ON t.id = u.user_id;

-- id: join-026
-- shape: join on a text key from an expression
SELECT count(*) FROM users u JOIN accounts a ON a.code = 'acc-' || lpad(u.user_id::text, 4, '0');

-- id: join-027
-- shape: colocated join, ORDER BY + LIMIT over it
SELECT o.o_orderkey, l.l_linenumber, l.l_quantity FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey WHERE o.o_orderpriority = '1-URGENT' ORDER BY l.l_quantity DESC, o.o_orderkey, l.l_linenumber LIMIT 15;

-- id: join-028
-- shape: distributed table joined with a VALUES list
SELECT v.k, u.city FROM (VALUES (1), (2), (3), (4), (5)) v(k) JOIN users u ON u.user_id = v.k ORDER BY v.k;
