-- NULL handling, empty results, expressions and types in unpinned reads, and errors PostgreSQL
-- gives (the proxy must give the same SQLSTATE, or 0A000).

-- id: misc-001
-- shape: IS NULL on a non-key column
SELECT user_id FROM users WHERE city IS NULL ORDER BY 1;

-- id: misc-002
-- shape: IS NOT NULL count
SELECT count(*) FROM events WHERE amount IS NOT NULL AND kind IS NOT NULL;

-- id: misc-003
-- shape: coalesce / nullif in the select list
SELECT user_id, coalesce(city, 'nowhere'), nullif(age, 40) FROM users WHERE user_id <= 30 ORDER BY 1;

-- id: misc-004
-- shape: IS DISTINCT FROM
SELECT count(*) FROM users WHERE city IS DISTINCT FROM 'Oslo';

-- id: misc-005
-- shape: GROUP BY with NULL groups
SELECT ok, count(*) FROM events GROUP BY ok ORDER BY ok NULLS FIRST;

-- id: misc-006
-- shape: empty result from a contradictory filter
SELECT * FROM users WHERE age > 100;

-- id: misc-007
-- shape: empty result with ORDER BY + LIMIT
SELECT user_id FROM users WHERE false ORDER BY user_id LIMIT 5;

-- id: misc-008
-- shape: empty table scan
SELECT * FROM empty_t;

-- id: misc-009
-- shape: WHERE on the key with a range (several shards)
SELECT user_id FROM users WHERE user_id BETWEEN 100 AND 110 ORDER BY 1;

-- id: misc-010
-- shape: key compared with another column
SELECT count(*) FROM users WHERE user_id = age;

-- id: misc-011
-- shape: LIKE / ILIKE / regex on a text column
SELECT count(*) FILTER (WHERE name LIKE 'user 1%'), count(*) FILTER (WHERE name ILIKE 'USER 2%'), count(*) FILTER (WHERE name ~ '9$') FROM users;

-- id: misc-012
-- shape: array operators
SELECT count(*) FILTER (WHERE tags @> ARRAY['red']), count(*) FILTER (WHERE 'blue' = ANY (tags)), count(*) FILTER (WHERE cardinality(tags) = 0) FROM events;

-- id: misc-013
-- shape: unnest of an array column, grouped
SELECT t, count(*) FROM events, unnest(tags) t GROUP BY t ORDER BY t;

-- id: misc-014
-- shape: date arithmetic and extract
SELECT extract(year FROM o_orderdate) AS y, count(*), min(o_orderdate + 30) FROM orders GROUP BY 1 ORDER BY 1;

-- id: misc-015
-- shape: timestamp truncation and intervals
SELECT date_trunc('quarter', at) AS q, count(*), max(at) - min(at) FROM events GROUP BY 1 ORDER BY 1;

-- id: misc-016
-- shape: numeric arithmetic precision (exact text)
SELECT sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)), sum(l_extendedprice / 3) FROM lineitem WHERE l_orderkey < 200;

-- id: misc-017
-- shape: float arithmetic from numeric (tolerance)
SELECT sum(l_extendedprice::float8 * 1.1), avg(sqrt(l_quantity::float8)) FROM lineitem;

-- id: misc-018
-- shape: division by zero (22012 on both)
SELECT 1 / (count(*) - count(*)) FROM users;

-- id: misc-019
-- shape: invalid cast (22P02 on both)
SELECT name::int FROM users WHERE user_id = 3;

-- id: misc-020
-- shape: unknown column (42703 on both)
SELECT no_such_column FROM users;

-- id: misc-021
-- shape: unknown table (42P01 on both)
SELECT * FROM no_such_table;

-- id: misc-022
-- shape: syntax error (42601 on both)
SELECT FROM WHERE users;

-- id: misc-023
-- shape: CASE with NULLs grouped
SELECT CASE WHEN age IS NULL THEN 'unknown' WHEN age < 40 THEN 'young' ELSE 'old' END AS band, count(*) FROM users GROUP BY 1 ORDER BY 1;

-- id: misc-024
-- shape: string functions over a distributed table
SELECT upper(city), length(string_agg(name, '' ORDER BY name)) FROM users GROUP BY city ORDER BY 1 NULLS LAST;

-- id: misc-025
-- shape: row constructor and composite output
SELECT row(user_id, name) FROM users WHERE user_id < 6 ORDER BY user_id;

-- id: misc-026
-- shape: jsonb built from rows
SELECT jsonb_build_object('id', user_id, 'city', city) FROM users WHERE user_id IN (10, 11, 12) ORDER BY user_id;

-- id: misc-027
-- shape: boolean expression output
SELECT user_id, age > 40 AND city IS NOT NULL FROM users WHERE user_id <= 12 ORDER BY 1;

-- id: misc-028
-- shape: key IS NULL (no rows anywhere)
SELECT count(*) FROM users WHERE user_id IS NULL;

-- id: misc-029
-- shape: char(n) padding in TPC-H columns
SELECT DISTINCT l_shipmode, length(l_shipmode), octet_length(l_shipmode) FROM lineitem ORDER BY 1;

-- id: misc-030
-- shape: numeric rounding and casts
SELECT round(avg(o_totalprice), 2), trunc(sum(o_totalprice) / 1000), max(o_totalprice)::int FROM orders;

-- id: misc-031
-- shape: functions that differ per server are not compared; now() is counted
SELECT count(*) FROM users WHERE joined < now();

-- id: misc-032
-- shape: EXPLAIN is not in the corpus; TABLE command
TABLE kinds;

-- id: misc-033
-- shape: tableoid-free projection of a whole distributed row as text
SELECT u::text FROM users u WHERE user_id BETWEEN 200 AND 205 ORDER BY user_id;

-- id: misc-034
-- shape: OR across key and non-key columns (unpinned)
SELECT count(*) FROM events WHERE user_id = 1 OR kind = 'share';

-- id: misc-035
-- shape: key in a subquery-free IN with NULL
SELECT user_id FROM users WHERE user_id IN (1, NULL, 3) ORDER BY 1;
