/**
 * The corpus's own small tables, beside TPC-H's, for shapes TPC-H does not exercise: NULLs in
 * grouping and aggregated columns, float8 (compared with the stated tolerance), arrays, booleans,
 * timestamps, a text distribution key, a reference table, a local table (on group 0) and an
 * empty distributed table. Generated deterministically from a seed, as COPY text rows.
 */
import { rng } from './tpch-data.js';

export const SHAPES_SCHEMA = `
CREATE TABLE users (user_id int PRIMARY KEY, name text NOT NULL, city text, age int, score float8, joined date);
CREATE TABLE events (event_id bigint NOT NULL, user_id int NOT NULL, kind text, amount numeric(10,2), weight float8,
  tags text[], ok bool, at timestamp, PRIMARY KEY (user_id, event_id));
CREATE TABLE kinds (kind text PRIMARY KEY, label text NOT NULL, rank int NOT NULL);
CREATE TABLE accounts (code text PRIMARY KEY, owner int, balance numeric(12,2));
CREATE TABLE notes (note_id int PRIMARY KEY, user_id int, body text);
CREATE TABLE empty_t (id int PRIMARY KEY, v int);
CREATE TABLE k_numeric (k numeric(10,2) PRIMARY KEY, v text);
CREATE TABLE k_uuid (k uuid PRIMARY KEY, v text);
CREATE TABLE k_bpchar (k char(5) PRIMARY KEY, v text);
CREATE TABLE k_varchar (k varchar(10) PRIMARY KEY, v text);
CREATE TABLE k_bigint (k bigint PRIMARY KEY, v text);
CREATE TABLE k_smallint (k smallint PRIMARY KEY, v text);
`;

export const SHAPES_DISTRIBUTION = [
  "SELECT create_distributed_table('users', 'user_id', colocate_with => 'none')",
  "SELECT create_distributed_table('events', 'user_id', colocate_with => 'users')",
  "SELECT create_reference_table('kinds')",
  "SELECT create_distributed_table('accounts', 'code')",
  "SELECT create_distributed_table('empty_t', 'id', colocate_with => 'none')",
  // One table per other distribution column type, 7 shards each (few, so keys share groups less).
  ...['k_numeric', 'k_uuid', 'k_bpchar', 'k_varchar', 'k_bigint', 'k_smallint'].map(
    (t) => `SELECT create_distributed_table('${t}', 'k', colocate_with => 'none', shard_count => 7)`,
  ),
  // notes stays a local table: it lives on group 0.
];

/**
 * Made after the tables are distributed and filled: a SQL function that reads a distributed
 * table, called by statements that do not name the table. (A view over a distributed table is
 * refused by the proxy with 0A000 when created, so the corpus has none.)
 */
export const SHAPES_AFTER_LOAD = [
  "CREATE FUNCTION count_users() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM users'",
];

const CITIES = ['Oslo', 'Lima', 'Pune', 'Kyiv', 'Accra', 'Quito', 'Perth'];
const KINDS = ['click', 'view', 'buy', 'share', 'like', 'refund'];
const TAGS = ['red', 'green', 'blue', 'new', 'old'];
const N = '\\N';

export function shapesRows(seed = 7): Record<string, string> {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const maybe = (v: string, pNull = 0.1) => (r() < pNull ? N : v);
  const out: Record<string, string> = {};

  let s = '';
  for (let u = 1; u <= 400; u++) {
    const day = new Date(Date.UTC(2020, 0, 1) + int(0, 1500) * 86_400_000).toISOString().slice(0, 10);
    // Scores with many digits, so float sums differ in the last bits by summation order.
    const score = (r() * 1000).toString();
    s += `${u}\tuser ${String(u).padStart(3, '0')}\t${maybe(pick(CITIES))}\t${maybe(String(int(18, 80)))}\t`;
    s += `${maybe(score, 0.05)}\t${day}\n`;
  }
  // Keys at the edges of the hash: zero, negatives, the int4 limits.
  for (const u of [0, -7, 2147483647, -2147483648]) s += `${u}\tedge ${u}\t\\N\t\\N\t\\N\t2020-01-01\n`;
  out.users = s;

  s = '';
  for (let e = 1; e <= 4000; e++) {
    // Some events' users do not exist (outer joins find them); users 53, 106, … have no events.
    let user = int(1, 420);
    while (user % 53 === 0) user = int(1, 420);
    const tags = Array.from({ length: int(0, 3) }, () => pick(TAGS));
    const at = new Date(Date.UTC(2024, 0, 1) + int(0, 365 * 24 * 60) * 60_000).toISOString();
    s += `${e}\t${user}\t${maybe(pick(KINDS), 0.05)}\t${maybe((int(-5000, 100000) / 100).toFixed(2))}\t`;
    s += `${maybe((r() * 10).toString(), 0.05)}\t{${tags.join(',')}}\t${maybe(r() < 0.7 ? 't' : 'f')}\t`;
    s += `${at.slice(0, 19).replace('T', ' ')}\n`;
  }
  out.events = s;

  out.kinds = KINDS.slice(0, 5)
    .map((k, i) => `${k}\t${k.toUpperCase()}\t${i + 1}\n`)
    .join('');

  s = '';
  for (let a = 1; a <= 200; a++) {
    s += `acc-${String(a).padStart(4, '0')}\t${maybe(String(int(1, 400)))}\t${maybe((int(0, 1_000_000) / 100).toFixed(2))}\n`;
  }
  // Text keys beyond ASCII, empty, with quotes and spaces: hashed as UTF-8 bytes.
  for (const code of ['ключ', 'ünïcødé', '🙂 smile', '', "it's", ' padded ', 'ACC-0001', '東京']) {
    s += `${code}\t1\t1.00\n`;
  }
  out.accounts = s;

  s = '';
  for (let n = 1; n <= 100; n++) s += `${n}\t${maybe(String(int(1, 400)))}\tnote ${n} ${pick(TAGS)}\n`;
  out.notes = s;
  out.k_numeric = ['1.00', '1.50', '-3.25', '0', '12345678.90', '2.01', '99.99']
    .map((k) => `${k}\tn ${k}\n`)
    .join('');
  out.k_uuid = [
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    '123e4567-e89b-12d3-a456-426614174000',
  ]
    .map((k) => `${k}\tu ${k.slice(0, 4)}\n`)
    .join('');
  out.k_bpchar = ['ab', 'abc  ', 'x', 'hello', ' lead'].map((k) => `${k}\tb ${k.trim()}\n`).join('');
  out.k_varchar = ['ab', 'ab ', 'Zürich', 'q', '1234567890'].map((k) => `${k}\tv ${k.trim()}\n`).join('');
  out.k_bigint = ['1', '-1', '2147483648', '-9223372036854775808', '9223372036854775807', '4294967296', '5']
    .map((k) => `${k}\tg ${k}\n`)
    .join('');
  out.k_smallint = ['1', '-1', '32767', '-32768', '0', '5'].map((k) => `${k}\ts ${k}\n`).join('');
  out.empty_t = '';
  return out;
}
