import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sessionEffects } from '../sql/session-effects.js';
import { restoreStatements, rewriteResets } from './reset-rewrite.js';

const startup = new Map([
  ['timezone', "'Asia/Tokyo'"],
  ['datestyle', "'Postgres, MDY'"],
]);
const rw = (sql: string) => rewriteResets(sql, sessionEffects(sql), startup);

test('RESET of a start-up setting becomes SET to the start-up value, tagged RESET', () => {
  assert.deepEqual(rw('RESET timezone'), { sql: "SET timezone TO 'Asia/Tokyo'", tags: ['RESET'] });
  assert.deepEqual(rw('SET TIME ZONE DEFAULT'), { sql: "SET timezone TO 'Asia/Tokyo'", tags: ['pass'] });
  assert.deepEqual(rw('select 1; reset DateStyle; select now()'), {
    sql: "select 1; SET datestyle TO 'Postgres, MDY'; select now()",
    tags: ['pass', 'RESET', 'pass'],
  });
  // application_name goes back to '' (the proxy's own connections say 'pgscale').
  assert.deepEqual(rw('RESET application_name'), { sql: "SET application_name TO ''", tags: ['RESET'] });
  // Settings the client did not give at start-up: the server's default is the client's too.
  assert.equal(rw('RESET work_mem'), null);
  assert.equal(rw('SELECT 1'), null);
});

test('RESET ALL is followed by the start-up values, their replies dropped', () => {
  const r = rw('RESET ALL; SHOW timezone');
  assert.ok(r);
  assert.equal(
    r.sql,
    "RESET ALL; SET timezone TO 'Asia/Tokyo'; SET datestyle TO 'Postgres, MDY'; SET application_name TO ''; SHOW timezone",
  );
  assert.deepEqual(r.tags, ['pass', 'drop', 'drop', 'drop', 'pass']);
});

test('restoreStatements sets the encoding first', () => {
  const s = restoreStatements(
    new Map([
      ['application_name', "'a'"],
      ['client_encoding', "'LATIN1'"],
    ]),
  );
  assert.deepEqual(s, ["SET client_encoding TO 'LATIN1'", "SET application_name TO 'a'"]);
});

test('SET LOCAL … TO DEFAULT takes the start-up value for the transaction', () => {
  assert.deepEqual(rw('SET LOCAL TimeZone TO DEFAULT'), {
    sql: "SET LOCAL timezone TO 'Asia/Tokyo'",
    tags: ['pass'],
  });
  assert.deepEqual(rw('set local time zone local'), {
    sql: "SET LOCAL timezone TO 'Asia/Tokyo'",
    tags: ['pass'],
  });
  assert.equal(rw("SET LOCAL TimeZone TO 'UTC'"), null);
  assert.equal(rw('SET LOCAL work_mem TO DEFAULT'), null);
});
