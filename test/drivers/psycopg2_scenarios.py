"""psycopg2 driver scenarios for pgscale's conformance suite.

Connection parameters come from the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE,
PGPASSWORD); DRV_TABLE names a table prefix no one else uses. Exits 0 when every check passes,
otherwise prints which check failed (with the traceback) to stderr and exits 1.
"""
import datetime
import decimal
import io
import os
import sys
import traceback
import uuid

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

PREFIX = os.environ["DRV_TABLE"]
COPY_ROWS = 100_000
CURSOR_ROWS = 50_000


def connect():
    return psycopg2.connect("", application_name="pgscale-drivers")


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def types_round_trip(conn):
    psycopg2.extras.register_uuid(conn_or_curs=conn)
    tz = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    values = {
        "dec": decimal.Decimal("-123456789012345678901234567890.123456789012345678901234567890"),
        "ts": datetime.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=tz),
        "d": datetime.date(1999, 12, 31),
        "iv": datetime.timedelta(days=3, seconds=4 * 3600 + 5 * 60 + 6, microseconds=789000),
        "by": bytes([0, 1, 2, 127, 128, 254, 255, 0x5C, 0x27]),
        "ia": [1, None, -3],
        "ta": ["a", "b,c", '"q"', None, "", "NULL", "ü☃"],
        "t": "ünï©ødé ☃ 𝄞 tab\there 'quote' back\\slash\r\nend",
        "u": uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
        "i8": -9223372036854775808,
        "f": 0.1,
        "b": True,
        "n": None,
    }
    doc = {"a": [1, 2.5, None, True], "s": "ü☃", "nested": {"x": {"y": "z"}}}
    # psycopg2 inlines parameters as literals: -9223372036854775808::int8 would parse as
    # -(9223372036854775808::int8), out of range, hence the parentheses.
    with conn.cursor() as cur:
        cur.execute(
            """SELECT %(dec)s::numeric, %(ts)s::timestamptz, %(d)s::date, %(iv)s::interval,
                      %(by)s::bytea, %(ia)s::int[], %(ta)s::text[], %(t)s::text, %(u)s::uuid,
                      (%(i8)s)::int8, %(f)s::float8, %(b)s::bool, %(n)s::text,
                      %(j)s::jsonb, %(j)s::json,
                      'NaN'::float8, 'Infinity'::float8, 'NaN'::numeric""",
            dict(values, j=psycopg2.extras.Json(doc)),
        )
        row = cur.fetchone()
    (dec, ts, d, iv, by, ia, ta, t, u, i8, f, b, n, jb, j, nan, inf, dnan) = row
    check(dec == values["dec"] and isinstance(dec, decimal.Decimal), f"numeric {dec!r}")
    check(ts == values["ts"] and ts.tzinfo is not None, f"timestamptz {ts!r}")
    check(d == values["d"], f"date {d!r}")
    check(iv == values["iv"], f"interval {iv!r}")
    check(isinstance(by, memoryview) and bytes(by) == values["by"], f"bytea {by!r}")
    check(ia == values["ia"], f"int[] {ia!r}")
    check(ta == values["ta"], f"text[] {ta!r}")
    check(t == values["t"], f"text {t!r}")
    check(u == values["u"], f"uuid {u!r}")
    check(i8 == values["i8"], f"int8 {i8!r}")
    check(f == 0.1, f"float8 {f!r}")
    check(b is True and n is None, f"bool/null {b!r} {n!r}")
    check(jb == doc and j == doc, f"json {jb!r} {j!r}")
    check(nan != nan and inf == float("inf") and dnan.is_nan(), f"NaN/Infinity {nan!r} {inf!r} {dnan!r}")
    # The server saw exactly these values, not only a round trip that loses the same way twice.
    with conn.cursor() as cur:
        cur.execute(
            """SELECT %s::numeric = '-123456789012345678901234567890.123456789012345678901234567890',
                      %s::timestamptz = '2024-02-29 18:29:58.123456+00',
                      %s::bytea = '\\x0001027f80feff5c27'::bytea""",
            (values["dec"], values["ts"], psycopg2.Binary(values["by"])),
        )
        check(cur.fetchone() == (True, True, True), "server-side equality of sent values")
    conn.rollback()


def named_cursor(conn):
    total = 0
    count = 0
    batches = 0
    with conn.cursor(name="drv_big_cursor") as cur:
        cur.itersize = 5000
        cur.execute("SELECT g, repeat('x', g %% 50) FROM generate_series(1, %s) g", (CURSOR_ROWS,))
        while True:
            rows = cur.fetchmany(5000)
            if not rows:
                break
            batches += 1
            for g, s in rows:
                check(len(s) == g % 50, "cursor row content")
                total += g
                count += 1
    check(count == CURSOR_ROWS, f"named cursor returned {count} rows")
    check(total == CURSOR_ROWS * (CURSOR_ROWS + 1) // 2, f"named cursor sum {total}")
    check(batches == CURSOR_ROWS // 5000, f"fetched in {batches} batches")
    conn.commit()


def copy_in_out(conn):
    table = PREFIX + "_copy"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
        data = "".join(f"{i}\tline {i} \\\\ ☃\n" for i in range(1, COPY_ROWS + 1))
        cur.copy_expert(f"COPY {table} (id, v) FROM STDIN", io.StringIO(data))
        check(cur.rowcount == COPY_ROWS, f"COPY in rowcount {cur.rowcount}")
        conn.commit()
        cur.execute(f"SELECT count(*), sum(id), min(v) FROM {table} WHERE v LIKE 'line %% \\\\ ☃'")
        check(cur.fetchone() == (COPY_ROWS, COPY_ROWS * (COPY_ROWS + 1) // 2, "line 1 \\ ☃"), "COPY in content")
        out = io.StringIO()
        cur.copy_expert(f"COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT", out)
        check(out.getvalue() == data, "COPY out equals what went in")
        cur.execute(f"DROP TABLE {table}")
    conn.commit()


def transactions(conn):
    table = PREFIX + "_tx"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        conn.commit()
        cur.execute(f"INSERT INTO {table} VALUES (1)")
        cur.execute("SAVEPOINT a")
        cur.execute(f"INSERT INTO {table} VALUES (2)")
        cur.execute("ROLLBACK TO SAVEPOINT a")
        cur.execute("SAVEPOINT b")
        try:
            cur.execute(f"INSERT INTO {table} VALUES (1)")
            raise AssertionError("duplicate key accepted")
        except psycopg2.errors.UniqueViolation:
            pass
        cur.execute("ROLLBACK TO SAVEPOINT b")
        cur.execute(f"INSERT INTO {table} VALUES (3)")
        conn.commit()
        cur.execute(f"INSERT INTO {table} VALUES (4)")
        conn.rollback()
        cur.execute(f"SELECT array_agg(id ORDER BY id) FROM {table}")
        check(cur.fetchone()[0] == [1, 3], "savepoints and rollback")
        # An error inside a transaction, then rollback, then the connection continues.
        cur.execute(f"INSERT INTO {table} VALUES (5)")
        try:
            cur.execute("SELECT 1/0")
            raise AssertionError("division by zero accepted")
        except psycopg2.errors.DivisionByZero:
            pass
        check(
            conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR,
            "transaction in error",
        )
        try:
            cur.execute("SELECT 1")
            raise AssertionError("query accepted in aborted transaction")
        except psycopg2.errors.InFailedSqlTransaction:
            pass
        conn.rollback()
        cur.execute(f"SELECT count(*) FROM {table} WHERE id = 5")
        check(cur.fetchone()[0] == 0, "rolled-back row gone")
        cur.execute(f"DROP TABLE {table}")
    conn.commit()
    # Autocommit mode: each statement commits on its own.
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT %s::int + 1", (41,))
        check(cur.fetchone()[0] == 42, "autocommit query")
        check(conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE, "idle in autocommit")
    conn.autocommit = False


def statement_timeout(conn):
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = '300ms'")
        conn.commit()
        try:
            cur.execute("SELECT pg_sleep(3)")
            raise AssertionError("statement_timeout did not fire")
        except psycopg2.extensions.QueryCanceledError as e:
            check(e.pgcode == "57014", f"SQLSTATE {e.pgcode}")
        conn.rollback()
        cur.execute("SHOW statement_timeout")
        check(cur.fetchone()[0] == "300ms", "session setting kept")
        cur.execute("RESET statement_timeout")
        cur.execute("SELECT pg_sleep(0.4), 1")
        check(cur.fetchone()[1] == 1, "query after reset")
    conn.commit()


def main():
    steps = [types_round_trip, named_cursor, copy_in_out, transactions, statement_timeout]
    try:
        conn = connect()
    except psycopg2.Error as e:
        sys.stderr.write(f"psycopg2: cannot connect: {e}")
        return 1
    try:
        for step in steps:
            try:
                step(conn)
            except Exception:
                sys.stderr.write(f"psycopg2 scenario failed in {step.__name__}:\n{traceback.format_exc()}")
                return 1
            print(f"ok {step.__name__}")
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
