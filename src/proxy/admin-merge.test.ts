import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeTables } from './admin-merge.js';

const pools = (rows: (string | number | boolean)[][]) => ({
  columns: ['database', 'user', 'cl_active', 'maxwait', 'pool_mode', 'paused'],
  rows,
});

test('SHOW POOLS: one row per pool, counters summed, maxwait the largest, paused if paused anywhere', () => {
  const t = mergeTables(
    'POOLS',
    [
      { worker: 2, table: pools([['app', 'app', 3, 1, 'transaction', false]]) },
      {
        worker: 1,
        table: pools([
          ['app', 'app', 2, 4, 'transaction', true],
          ['other', 'bob', 1, 0, 'session', false],
        ]),
      },
    ],
    2,
  );
  assert.deepEqual(t?.rows, [
    ['app', 'app', 5, 4, 'transaction', true],
    ['other', 'bob', 1, 0, 'session', false],
  ]);
  assert.deepEqual(t?.columns, pools([]).columns, "PgBouncer's columns, unchanged");
});

test('SHOW LISTS: pools and clients add up, databases and users are each worker’s whole list', () => {
  const lists = (n: number) => ({
    columns: ['list', 'items'],
    rows: [
      ['databases', 2],
      ['users', 3],
      ['used_clients', n],
    ],
  });
  const t = mergeTables(
    'LISTS',
    [
      { worker: 1, table: lists(4) },
      { worker: 2, table: lists(5) },
    ],
    1,
  );
  assert.deepEqual(t?.rows, [
    ['databases', 2],
    ['users', 3],
    ['used_clients', 9],
  ]);
});

test('SHOW CLIENTS: every worker’s rows, with the worker in a last column', () => {
  const clients = (user: string) => ({ columns: ['type', 'user'], rows: [['C', user]] });
  const t = mergeTables(
    'CLIENTS',
    [
      { worker: 2, table: clients('b') },
      { worker: 1, table: clients('a') },
    ],
    2,
  );
  assert.deepEqual(t, {
    columns: ['type', 'user', 'worker'],
    rows: [
      ['C', 'a', 1],
      ['C', 'b', 2],
    ],
  });
});

test('SHOW WORKERS marks the answering worker; SHOW CONFIG is the answering worker’s own', () => {
  const w = (n: number) => ({ columns: ['worker', 'pid', 'answering'], rows: [[n, 100 + n, true]] });
  const t = mergeTables(
    'WORKERS',
    [
      { worker: 1, table: w(1) },
      { worker: 2, table: w(2) },
    ],
    2,
  );
  assert.deepEqual(t?.rows, [
    [1, 101, false],
    [2, 102, true],
  ]);
  const cfg = (v: string) => ({ columns: ['key', 'value'], rows: [['port', v]] });
  assert.deepEqual(
    mergeTables(
      'CONFIG',
      [
        { worker: 1, table: cfg('a') },
        { worker: 2, table: cfg('b') },
      ],
      2,
    )?.rows,
    [['port', 'b']],
  );
  assert.equal(mergeTables('POOLS', [], 1), null);
});
