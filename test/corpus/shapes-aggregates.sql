-- Aggregates without the distribution key (every group's rows needed): the two-stage merges
-- issue #16 plans in the proxy (count, sum, min, max, avg as sum+count, bool_and/bool_or/every,
-- array_agg/string_agg with ORDER BY inside), GROUP BY with HAVING after the merge, and the ones
-- that need the general path (count(DISTINCT), percentiles, ordered-set aggregates, FILTER).

-- id: agg-001
-- shape: unpinned count(*)
SELECT count(*) FROM lineitem;

-- id: agg-002
-- shape: unpinned count(column) with NULLs
SELECT count(city), count(age), count(score) FROM users;

-- id: agg-003
-- shape: unpinned sum of int and numeric
SELECT sum(l_linenumber), sum(l_quantity), sum(l_extendedprice) FROM lineitem;

-- id: agg-004
-- shape: unpinned avg of numeric (scale of the result)
SELECT avg(l_quantity), avg(l_discount), avg(o_totalprice) FROM lineitem JOIN orders ON o_orderkey = l_orderkey;

-- id: agg-005
-- shape: unpinned avg of int (numeric result)
SELECT avg(age), avg(user_id) FROM users;

-- id: agg-006
-- shape: unpinned min/max of text, date, numeric, timestamp
SELECT min(name), max(name), min(joined), max(joined), min(amount), max(amount), min(at), max(at) FROM users JOIN events USING (user_id);

-- id: agg-007
-- shape: unpinned sum/avg of float8 (tolerance)
SELECT sum(score), avg(score), min(score), max(score) FROM users;

-- id: agg-008
-- shape: unpinned float aggregates over events
SELECT sum(weight), avg(weight), min(weight), max(weight), stddev(weight), variance(weight) FROM events;

-- id: agg-009
-- shape: unpinned bool_and/bool_or/every
SELECT bool_and(ok), bool_or(ok), every(ok), bool_and(ok) FILTER (WHERE kind = 'buy') FROM events;

-- id: agg-010
-- shape: unpinned array_agg with ORDER BY inside
SELECT array_agg(user_id ORDER BY user_id) FROM users WHERE age = 30;

-- id: agg-011
-- shape: unpinned string_agg with ORDER BY inside
SELECT string_agg(name, '|' ORDER BY name DESC) FROM users WHERE city = 'Oslo';

-- id: agg-012
-- shape: GROUP BY a non-key column
SELECT city, count(*), avg(age), min(name), max(score) FROM users GROUP BY city ORDER BY city NULLS FIRST;

-- id: agg-013
-- shape: GROUP BY without ORDER BY (multiset)
SELECT kind, count(*), sum(amount) FROM events GROUP BY kind;

-- id: agg-014
-- shape: GROUP BY + HAVING after the merge
SELECT kind, count(*) FROM events GROUP BY kind HAVING count(*) > 600 ORDER BY kind;

-- id: agg-015
-- shape: HAVING on an aggregate not in the select list
SELECT city FROM users GROUP BY city HAVING avg(age) > 48 ORDER BY city;

-- id: agg-016
-- shape: GROUP BY two columns
SELECT l_returnflag, l_shipmode, count(*), sum(l_quantity) FROM lineitem GROUP BY l_returnflag, l_shipmode ORDER BY 1, 2;

-- id: agg-017
-- shape: GROUP BY an expression
SELECT date_trunc('month', at) AS m, count(*) FROM events GROUP BY 1 ORDER BY 1;

-- id: agg-018
-- shape: GROUP BY the distribution key (each group holds whole groups)
SELECT user_id, count(*), sum(amount) FROM events GROUP BY user_id ORDER BY user_id;

-- id: agg-019
-- shape: GROUP BY the distribution key with HAVING
SELECT l_orderkey, sum(l_quantity) FROM lineitem GROUP BY l_orderkey HAVING sum(l_quantity) > 280 ORDER BY l_orderkey;

-- id: agg-020
-- shape: count(DISTINCT) of a non-key column
SELECT count(DISTINCT l_partkey), count(DISTINCT l_suppkey) FROM lineitem;

-- id: agg-021
-- shape: count(DISTINCT) of the key
SELECT count(DISTINCT user_id) FROM events;

-- id: agg-022
-- shape: count(DISTINCT) per group
SELECT kind, count(DISTINCT user_id) FROM events GROUP BY kind ORDER BY kind NULLS LAST;

-- id: agg-023
-- shape: sum(DISTINCT)/avg(DISTINCT)
SELECT sum(DISTINCT age), avg(DISTINCT age) FROM users;

-- id: agg-024
-- shape: percentile_cont / percentile_disc
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l_quantity), percentile_disc(0.9) WITHIN GROUP (ORDER BY l_extendedprice) FROM lineitem;

-- id: agg-025
-- shape: percentile per group
SELECT city, percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY age) FROM users GROUP BY city ORDER BY city NULLS LAST;

-- id: agg-026
-- shape: mode()
SELECT mode() WITHIN GROUP (ORDER BY kind) FROM events;

-- id: agg-027
-- shape: FILTER clause
SELECT count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok), sum(amount) FILTER (WHERE kind = 'refund') FROM events;

-- id: agg-028
-- shape: aggregate of an expression with CASE
SELECT sum(CASE WHEN l_returnflag = 'R' THEN l_quantity ELSE 0 END) AS r, sum(CASE WHEN l_linestatus = 'O' THEN 1 ELSE 0 END) AS o FROM lineitem;

-- id: agg-029
-- shape: aggregate over an empty table (one row, NULLs and 0)
SELECT count(*), sum(v), avg(v), min(v), max(v), bool_and(v > 0), array_agg(v), string_agg(v::text, ',') FROM empty_t;

-- id: agg-030
-- shape: GROUP BY over an empty table (no rows)
SELECT v, count(*) FROM empty_t GROUP BY v;

-- id: agg-031
-- shape: aggregate with a filter that matches nothing
SELECT count(*), sum(o_totalprice) FROM orders WHERE o_orderdate < date '1900-01-01';

-- id: agg-032
-- shape: GROUP BY ROLLUP
SELECT l_returnflag, l_linestatus, count(*) FROM lineitem GROUP BY ROLLUP (l_returnflag, l_linestatus) ORDER BY 1, 2;

-- id: agg-033
-- shape: GROUP BY CUBE
SELECT kind, ok, count(*) FROM events GROUP BY CUBE (kind, ok) ORDER BY 1, 2, 3;

-- id: agg-034
-- shape: GROUPING SETS with grouping()
SELECT city, age > 50 AS old, grouping(city, age > 50), count(*) FROM users GROUP BY GROUPING SETS ((city), (age > 50), ()) ORDER BY 3, 1, 2;

-- id: agg-035
-- shape: count of a join of colocated tables without the key
SELECT count(*), sum(l_quantity) FROM orders JOIN lineitem ON l_orderkey = o_orderkey WHERE o_orderstatus = 'F';

-- id: agg-036
-- shape: max of a text key
SELECT max(code), min(code), count(*) FROM accounts;

-- id: agg-037
-- shape: sum over the text-keyed table with NULLs
SELECT sum(balance), avg(balance), count(balance), count(owner) FROM accounts;

-- id: agg-038
-- shape: aggregate arguments with NULL-producing expressions
SELECT sum(NULLIF(age, 30)), count(NULLIF(city, 'Oslo')), max(coalesce(city, '?')) FROM users;

-- id: agg-039
-- shape: json_agg / jsonb_object_agg ordered
SELECT json_agg(code ORDER BY code) FROM accounts WHERE balance > 9900;

-- id: agg-040
-- shape: aggregate in a derived table, then filtered
SELECT * FROM (SELECT o_custkey, count(*) AS n FROM orders GROUP BY o_custkey) t WHERE n >= 16 ORDER BY o_custkey;

-- id: agg-041
-- shape: regr/corr statistical aggregates (float)
SELECT corr(l_quantity::float8, l_extendedprice::float8), regr_slope(l_extendedprice::float8, l_quantity::float8) FROM lineitem;

-- id: agg-042
-- shape: bit_and / bit_or
SELECT bit_and(l_linenumber), bit_or(l_linenumber) FROM lineitem;

-- id: agg-043
-- shape: count(*) with GROUP BY a constant-like expression
SELECT l_linenumber % 2 AS odd, count(*) FROM lineitem GROUP BY 1 ORDER BY 1;

-- id: agg-044
-- shape: avg over a float8 column grouped (tolerance)
SELECT kind, avg(weight), sum(weight) FROM events GROUP BY kind ORDER BY kind NULLS FIRST;

-- id: agg-045
-- shape: array_agg of DISTINCT values ordered
SELECT array_agg(DISTINCT city ORDER BY city) FROM users;
