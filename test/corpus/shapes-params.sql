-- Statements with Bind parameters (extended protocol, unnamed and named statements): keys given
-- as $n, arrays for = ANY($1), NULL and unreadable values, parameters in unpinned statements.

-- id: param-001
-- shape: point lookup by $1
-- params: [17]
SELECT * FROM users WHERE user_id = $1;

-- id: param-002
-- shape: point lookup by $1 given as text
-- params: ["18"]
SELECT user_id, name FROM users WHERE user_id = $1;

-- id: param-003
-- shape: $1 cast to int8
-- params: [19]
SELECT user_id FROM users WHERE user_id = $1::int8;

-- id: param-004
-- shape: IN ($1, $2) on several groups
-- params: [20, 21]
SELECT user_id FROM users WHERE user_id IN ($1, $2) ORDER BY 1;

-- id: param-005
-- shape: = ANY($1) with an array parameter
-- params: [[22, 23, 24]]
SELECT user_id FROM users WHERE user_id = ANY ($1) ORDER BY 1;

-- id: param-006
-- shape: = ANY($1::int[]) with one element
-- params: [[25]]
SELECT user_id FROM users WHERE user_id = ANY ($1::int[]);

-- id: param-007
-- shape: key = NULL parameter (no row)
-- params: [null]
SELECT user_id FROM users WHERE user_id = $1;

-- id: param-008
-- shape: key parameter not an integer (22P02 on both)
-- params: ["abc"]
SELECT user_id FROM users WHERE user_id = $1;

-- id: param-009
-- shape: key parameter out of int4 range (22003 on both)
-- params: ["99999999999"]
SELECT user_id FROM users WHERE user_id = $1;

-- id: param-010
-- shape: text key parameter
-- params: ["acc-0026"]
SELECT code, balance FROM accounts WHERE code = $1;

-- id: param-011
-- shape: colocated join pinned by $1
-- params: [27]
SELECT u.name, e.event_id FROM users u JOIN events e ON e.user_id = u.user_id WHERE u.user_id = $1 ORDER BY 2;

-- id: param-012
-- shape: pinned by $1 with another parameter in a filter
-- params: [28, 100]
SELECT event_id, amount FROM events WHERE user_id = $1 AND amount > $2 ORDER BY event_id;

-- id: param-013
-- shape: unpinned statement with a parameter
-- params: [30]
SELECT count(*) FROM users WHERE age = $1;

-- id: param-014
-- shape: parameter in LIMIT of a pinned statement
-- params: [29, 2]
SELECT event_id FROM events WHERE user_id = $1 ORDER BY event_id LIMIT $2;

-- id: param-015
-- shape: order key by $1 with lineitem colocated
-- params: [4242]
SELECT o.o_orderkey, count(l.l_linenumber) FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey WHERE o.o_orderkey = $1 GROUP BY o.o_orderkey;

-- id: param-016
-- shape: the same parameter for two colocated tables
-- params: [31]
SELECT count(*) FROM users u, events e WHERE u.user_id = $1 AND e.user_id = $1;

-- id: param-017
-- shape: two parameters pinning colocated tables to keys on maybe two groups
-- params: [32, 33]
SELECT count(*) FROM users u, events e WHERE u.user_id = $1 AND e.user_id = $2;

-- id: param-018
-- shape: parameter in the select list only, pinned by a constant
-- params: ["hello"]
SELECT $1::text AS greeting, name FROM users WHERE user_id = 34;

-- id: param-019
-- shape: reference table read with a parameter
-- params: [3]
SELECT kind, label FROM kinds WHERE rank <= $1 ORDER BY rank;

-- id: param-020
-- shape: key = ANY($1) with an empty array (no row)
-- params: [[]]
SELECT user_id FROM users WHERE user_id = ANY ($1::int[]);
