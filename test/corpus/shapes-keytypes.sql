-- Point lookups on each distribution column type the proxy hashes itself: numeric(p,s), uuid,
-- char(n), varchar(n), bigint, smallint — values written in the forms PostgreSQL accepts, and
-- values of another type that PostgreSQL compares in a wider type.

-- id: key-num-01
-- shape: numeric key = integer literal
SELECT k, v FROM k_numeric WHERE k = 1;

-- id: key-num-02
-- shape: numeric key = literal with another scale
SELECT k, v FROM k_numeric WHERE k = 1.5;

-- id: key-num-03
-- shape: numeric key = quoted literal with trailing zeros
SELECT k, v FROM k_numeric WHERE k = '1.500';

-- id: key-num-04
-- shape: numeric key = negative literal
SELECT k, v FROM k_numeric WHERE k = -3.25;

-- id: key-num-05
-- shape: numeric key = zero written as 0.000
SELECT k, v FROM k_numeric WHERE k = 0.000;

-- id: key-num-06
-- shape: numeric key = literal with more decimals than the column (no row: compared as written)
SELECT k, v FROM k_numeric WHERE k = 2.005;

-- id: key-num-07
-- shape: numeric key = exponent literal
SELECT k, v FROM k_numeric WHERE k = 1.2345678900e7;

-- id: key-num-08
-- shape: numeric key = integer parameter
-- params: [1]
SELECT k, v FROM k_numeric WHERE k = $1;

-- id: key-num-09
-- shape: numeric key = text parameter with trailing zeros
-- params: ["99.990"]
SELECT k, v FROM k_numeric WHERE k = $1;

-- id: key-num-10
-- shape: numeric key = bigint-cast literal
SELECT k, v FROM k_numeric WHERE k = 1::bigint;

-- id: key-uuid-01
-- shape: uuid key in canonical form
SELECT k, v FROM k_uuid WHERE k = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';

-- id: key-uuid-02
-- shape: uuid key in upper case with braces
SELECT k, v FROM k_uuid WHERE k = '{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}';

-- id: key-uuid-03
-- shape: uuid key without hyphens
SELECT k, v FROM k_uuid WHERE k = 'ffffffffffffffffffffffffffffffff';

-- id: key-uuid-04
-- shape: uuid key as a parameter
-- params: ["123e4567-e89b-12d3-a456-426614174000"]
SELECT k, v FROM k_uuid WHERE k = $1;

-- id: key-uuid-05
-- shape: uuid key cast explicitly
SELECT k, v FROM k_uuid WHERE k = '00000000-0000-0000-0000-000000000000'::uuid;

-- id: key-uuid-06
-- shape: malformed uuid (22P02 on both)
SELECT k FROM k_uuid WHERE k = 'not-a-uuid';

-- id: key-bpchar-01
-- shape: char(n) key = shorter literal
SELECT k, v FROM k_bpchar WHERE k = 'ab';

-- id: key-bpchar-02
-- shape: char(n) key = literal with trailing spaces
SELECT k, v FROM k_bpchar WHERE k = 'abc   ';

-- id: key-bpchar-03
-- shape: char(n) key = text-typed literal (compared as text, blanks stripped)
SELECT k, v FROM k_bpchar WHERE k = 'hello'::text;

-- id: key-bpchar-04
-- shape: char(n) key with a leading space
SELECT k, v FROM k_bpchar WHERE k = ' lead';

-- id: key-bpchar-05
-- shape: char(n) key = parameter
-- params: ["x"]
SELECT k, v FROM k_bpchar WHERE k = $1;

-- id: key-varchar-01
-- shape: varchar key = literal
SELECT k, v FROM k_varchar WHERE k = 'ab';

-- id: key-varchar-02
-- shape: varchar key = literal with a trailing space (another row)
SELECT k, v FROM k_varchar WHERE k = 'ab ';

-- id: key-varchar-03
-- shape: varchar key, non-ASCII
SELECT k, v FROM k_varchar WHERE k = 'Zürich';

-- id: key-varchar-04
-- shape: varchar key = literal longer than the column (no row, no error)
SELECT k, v FROM k_varchar WHERE k = '12345678901';

-- id: key-varchar-05
-- shape: varchar key = text parameter
-- params: ["q"]
SELECT k, v FROM k_varchar WHERE k = $1;

-- id: key-varchar-06
-- shape: varchar key = char(n)-typed literal (compared as bpchar)
SELECT k, v FROM k_varchar WHERE k = 'ab'::char(3);

-- id: key-big-01
-- shape: bigint key = int4 literal
SELECT k, v FROM k_bigint WHERE k = 5;

-- id: key-big-02
-- shape: bigint key just above int4
SELECT k, v FROM k_bigint WHERE k = 2147483648;

-- id: key-big-03
-- shape: bigint key = minimum
SELECT k, v FROM k_bigint WHERE k = -9223372036854775808;

-- id: key-big-04
-- shape: bigint key = maximum as a parameter
-- params: ["9223372036854775807"]
SELECT k, v FROM k_bigint WHERE k = $1;

-- id: key-big-05
-- shape: bigint key = numeric literal with a zero fraction
SELECT k, v FROM k_bigint WHERE k = 4294967296.0;

-- id: key-big-06
-- shape: bigint key = literal beyond bigint (numeric comparison, no row)
SELECT k, v FROM k_bigint WHERE k = 9223372036854775808;

-- id: key-big-07
-- shape: bigint key = negative one
SELECT k, v FROM k_bigint WHERE k = -1;

-- id: key-small-01
-- shape: smallint key = literal
SELECT k, v FROM k_smallint WHERE k = 5;

-- id: key-small-02
-- shape: smallint key = maximum
SELECT k, v FROM k_smallint WHERE k = 32767;

-- id: key-small-03
-- shape: smallint key = minimum
SELECT k, v FROM k_smallint WHERE k = -32768;

-- id: key-small-04
-- shape: smallint key = int4 literal beyond smallint (no row, no error)
SELECT k, v FROM k_smallint WHERE k = 40000;

-- id: key-small-05
-- shape: smallint key = quoted literal beyond smallint (22003 on both)
SELECT k, v FROM k_smallint WHERE k = '40000';

-- id: key-small-06
-- shape: smallint key = parameter
-- params: [-1]
SELECT k, v FROM k_smallint WHERE k = $1;

-- id: key-all-01
-- shape: unpinned read of every typed table (counts)
SELECT (SELECT count(*) FROM k_numeric), (SELECT count(*) FROM k_uuid), (SELECT count(*) FROM k_bpchar), (SELECT count(*) FROM k_bigint);
