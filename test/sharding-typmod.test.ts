/**
 * Distribution columns with a type modifier through the proxy (`pgscale up`, two groups):
 * numeric(10,2), varchar(5) and char(8) keys. A value written with more decimals than the scale,
 * or with trailing spaces beyond n, is stored by PostgreSQL after the assignment cast and hashed
 * as stored; the proxy must route it there (else the group refuses the row: it does not hold that
 * partition), and a point SELECT by the stored key must find it. In the simple protocol, the
 * extended protocol with text and binary parameters (node-postgres) and postgres.js. Values that
 * do not fit get PostgreSQL's own errors (22003, 22001), never a placement.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import postgres from 'postgres';
import { binarySets } from './harness.js';
import { placement, upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';

const bins = binarySets()[0]!;

/** numeric_send's bytes for a plain decimal text (sign, base-10000 digits, weight, dscale). */
function numericBinary(text: string): Buffer {
  const negative = text.startsWith('-');
  const [int = '', frac = ''] = text.replace(/^-/, '').split('.');
  const intPad = int.padStart(Math.ceil(int.length / 4) * 4, '0');
  const fracPad = frac.padEnd(Math.ceil(frac.length / 4) * 4, '0');
  const digits: number[] = [];
  for (let i = 0; i < intPad.length; i += 4) digits.push(Number(intPad.slice(i, i + 4)));
  for (let i = 0; i < fracPad.length; i += 4) digits.push(Number(fracPad.slice(i, i + 4)));
  let weight = intPad.length / 4 - 1;
  while (digits.length > 0 && digits[0] === 0) {
    digits.shift();
    weight--;
  }
  while (digits.length > 0 && digits[digits.length - 1] === 0) digits.pop();
  const b = Buffer.alloc(8 + 2 * digits.length);
  b.writeUInt16BE(digits.length, 0);
  b.writeInt16BE(digits.length === 0 ? 0 : weight, 2);
  b.writeUInt16BE(negative ? 0x4000 : 0, 4);
  b.writeUInt16BE(frac.length, 6);
  digits.forEach((d, i) => b.writeUInt16BE(d, 8 + 2 * i));
  return b;
}

describe('distribution columns with a type modifier, through pgscale up (two groups)', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  let direct: pg.Client[] = [];
  const code = (c: string) => (e: { code?: string }) => e.code === c;

  before(async () => {
    sc = await upSharded(bins, { groups: 2, replicas: 0 });
    app = await sc.connectApp();
    for (let g = 0; g < 2; g++) direct.push(await sc.connectGroup(g));
    await app.query('CREATE TABLE prices (k numeric(10,2) PRIMARY KEY, v text)');
    await app.query("SELECT create_distributed_table('prices', 'k')");
    await app.query('CREATE TABLE codes (k varchar(5) PRIMARY KEY, v text)');
    await app.query("SELECT create_distributed_table('codes', 'k')");
    await app.query('CREATE TABLE tags (k char(8) PRIMARY KEY, v text)');
    await app.query("SELECT create_distributed_table('tags', 'k')");
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    direct = [];
    await sc?.down();
  });

  // Values with three decimals: rounded to two when stored, which moves many of them to another
  // shard (and so, half the time, another group) than the value as written.
  const values = Array.from(
    { length: 24 },
    (_, i) => `${(i * 7919) % 10000}.${String((i * 37) % 100).padStart(2, '0')}5`,
  );
  const rounded = (v: string) => {
    const [i, f = ''] = v.split('.');
    const hundredths = BigInt(i! + f.padEnd(3, '0').slice(0, 3));
    const r = (hundredths + 5n) / 10n;
    const s = r.toString().padStart(3, '0');
    return `${s.slice(0, -2)}.${s.slice(-2)}`;
  };

  test('numeric(10,2), simple protocol: rows written with three decimals are stored rounded and found by key', async () => {
    for (const v of values.slice(0, 8)) {
      await app.query(`INSERT INTO prices (k, v) VALUES (${v}, 'simple ${v}')`);
      const got = await app.query(`SELECT v FROM prices WHERE k = ${rounded(v)}`);
      assert.deepEqual(got.rows, [{ v: `simple ${v}` }], v);
      // Compared as written, the value matches no row (PostgreSQL does not round a WHERE value).
      assert.equal((await app.query(`SELECT v FROM prices WHERE k = ${v}`)).rowCount, 0, v);
    }
  });

  test('numeric(10,2), extended protocol: text and binary parameters (node-postgres), postgres.js', async () => {
    for (const v of values.slice(8, 12)) {
      await app.query('INSERT INTO prices (k, v) VALUES ($1, $2)', [v, `text ${v}`]);
      const got = await app.query('SELECT v FROM prices WHERE k = $1', [rounded(v)]);
      assert.deepEqual(got.rows, [{ v: `text ${v}` }], v);
    }
    for (const v of values.slice(12, 16)) {
      await app.query('INSERT INTO prices (k, v) VALUES ($1, $2)', [numericBinary(v), `binary ${v}`]);
      const got = await app.query('SELECT v FROM prices WHERE k = $1', [numericBinary(rounded(v))]);
      assert.deepEqual(got.rows, [{ v: `binary ${v}` }], v);
    }
    const sql = postgres({ ...sc.app, max: 1, prepare: true, onnotice: () => {} });
    try {
      for (const v of values.slice(16, 24)) {
        await sql`INSERT INTO prices (k, v) VALUES (${v}, ${'postgres.js ' + v})`;
        const got = await sql<{ v: string }[]>`SELECT v FROM prices WHERE k = ${rounded(v)}`;
        assert.deepEqual([...got], [{ v: `postgres.js ${v}` }], v);
      }
    } finally {
      await sql.end();
    }
    const placed = await placement(direct, 'prices', 'k');
    assert.equal(placed.size, 24);
    for (const v of values) assert.ok(placed.has(rounded(v)), `${rounded(v)} stored`);
  });

  test('numeric(10,2): a value beyond the precision gets 22003, and the session goes on', async () => {
    await assert.rejects(app.query('INSERT INTO prices (k) VALUES (123456789.123)'), code('22003'));
    await assert.rejects(app.query('INSERT INTO prices (k) VALUES ($1)', ['99999999.995']), code('22003'));
    assert.equal((await app.query('SELECT 1 AS one')).rows[0].one, 1);
  });

  test('varchar(5) and char(8): trailing spaces beyond n are cut; longer values get 22001', async () => {
    const keys = ['ab', 'abc', 'abcd', 'abcde', 'xyz', 'k1', 'k22', 'k333'];
    for (const k of keys) {
      // Written with spaces up to 7 characters: varchar(5) keeps five of them.
      await app.query('INSERT INTO codes (k, v) VALUES ($1, $2)', [k.padEnd(7, ' '), k]);
      const got = await app.query('SELECT v FROM codes WHERE k = $1', [k.padEnd(5, ' ')]);
      assert.deepEqual(got.rows, [{ v: k }], k);
      await app.query(`INSERT INTO tags (k, v) VALUES ('${k.padEnd(11, ' ')}', '${k}')`);
      const tag = await app.query(`SELECT v FROM tags WHERE k = '${k}'`);
      assert.deepEqual(tag.rows, [{ v: k }], k);
    }
    await assert.rejects(app.query("INSERT INTO codes (k) VALUES ('abcdef')"), code('22001'));
    await assert.rejects(app.query('INSERT INTO tags (k) VALUES ($1)', ['abcdefghi']), code('22001'));
    assert.equal((await placement(direct, 'codes', 'k')).size, keys.length);
  });
});
