/**
 * psql: simple queries with -c, client-side \copy of 100k rows in and out (COPY FROM STDIN /
 * COPY TO STDOUT on the wire), a script with a transaction and a savepoint rolled back, and an
 * error followed by further statements in the same session (ON_ERROR_STOP=0).
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../harness.js';
import type { ScenarioFactory } from './scenario.js';
import type { DriverTarget } from './target.js';
import { dropTables, expectSuccess, libpqEnv, required, run, uniqueName } from './util.js';

const ROWS = 100_000;

export const psqlScenario: ScenarioFactory = (tools) => ({
  name: 'psql: -c queries, \\copy in/out 100k rows, transaction script with savepoint, error recovery',
  async run(t: DriverTarget) {
    const psqlBin = required(tools.psql, 'psql', 'install postgresql-client');
    const env = libpqEnv(t);
    const psql = (args: string[], input?: string) =>
      run(psqlBin, ['-X', '-q', '-At', ...args], { env, input, timeoutMs: 60_000 });
    const table = uniqueName('psql');
    const dir = tempDir('pgscale-drivers-psql-');
    try {
      // Several -c commands in one session: each is a simple Query message.
      const simple = expectSuccess(
        await psql(['-c', 'SELECT 1 + 1', '-c', "SELECT 'héllo ☃'", '-c', 'SELECT current_user']),
        'psql -c',
      );
      assert.deepEqual(simple.stdout.trim().split('\n'), ['2', 'héllo ☃', t.user]);

      expectSuccess(
        await psql(['-c', `CREATE TABLE ${table} (id int PRIMARY KEY, v text, n numeric)`]),
        'create',
      );
      const lines: string[] = [];
      for (let i = 1; i <= ROWS; i++) lines.push(`${i}\tvalue ${i} \\\\ tab\\there\t${i}.${i % 100}`);
      const inFile = join(dir, 'in.tsv');
      const outFile = join(dir, 'out.tsv');
      writeFileSync(inFile, lines.join('\n') + '\n');
      const copyIn = expectSuccess(await psql(['-c', `\\copy ${table} FROM '${inFile}'`]), '\\copy in');
      assert.equal(copyIn.stderr, '');
      const counted = expectSuccess(
        await psql([
          '-c',
          `SELECT count(*), sum(id), sum(n), count(*) FILTER (WHERE position(chr(92) IN v) > 0) FROM ${table}`,
        ]),
        'count',
      );
      // sum(n) = sum(i) + sum((i % 100) / 10^digits): checked against the same formula in SQL.
      const expect = expectSuccess(
        await psql([
          '-c',
          `SELECT ${ROWS}, ${(ROWS * (ROWS + 1)) / 2}, sum((g || '.' || g % 100)::numeric), ${ROWS} FROM generate_series(1, ${ROWS}) g`,
        ]),
        'expected sums',
      );
      assert.equal(counted.stdout.trim(), expect.stdout.trim());
      const tabbed = expectSuccess(await psql(['-c', `SELECT v FROM ${table} WHERE id = 7`]), 'escapes');
      assert.equal(tabbed.stdout, 'value 7 \\ tab\there\n');

      expectSuccess(
        await psql(['-c', `\\copy (SELECT * FROM ${table} ORDER BY id) TO '${outFile}'`]),
        '\\copy out',
      );
      assert.equal(
        readFileSync(outFile, 'utf8'),
        readFileSync(inFile, 'utf8'),
        '\\copy out equals what went in',
      );

      // A script: transaction, savepoint rolled back, savepoint released.
      const script = [
        `CREATE TABLE ${table}_tx (id int PRIMARY KEY, note text);`,
        'BEGIN;',
        `INSERT INTO ${table}_tx VALUES (1, 'kept');`,
        'SAVEPOINT a;',
        `INSERT INTO ${table}_tx VALUES (2, 'rolled back');`,
        `INSERT INTO ${table}_tx VALUES (3, 'rolled back too');`,
        'ROLLBACK TO SAVEPOINT a;',
        `INSERT INTO ${table}_tx VALUES (4, 'after rollback to savepoint');`,
        'SAVEPOINT b;',
        `INSERT INTO ${table}_tx VALUES (5, 'released');`,
        'RELEASE SAVEPOINT b;',
        'COMMIT;',
        `SELECT string_agg(id::text, ',' ORDER BY id) FROM ${table}_tx;`,
      ].join('\n');
      const scriptFile = join(dir, 'tx.sql');
      writeFileSync(scriptFile, script);
      const tx = expectSuccess(await psql(['-v', 'ON_ERROR_STOP=1', '-f', scriptFile]), 'transaction script');
      assert.equal(tx.stdout.trim(), '1,4,5');

      // Errors with ON_ERROR_STOP=0: outside a transaction, then inside one (rolled back), and
      // the same session goes on working after each.
      const errors = await psql(
        ['-v', 'ON_ERROR_STOP=0'],
        [
          'SELECT 1/0;',
          "SELECT 'after error';",
          'BEGIN;',
          `INSERT INTO ${table}_tx VALUES (6, 'doomed');`,
          `INSERT INTO ${table}_tx VALUES (1, 'duplicate key');`,
          "SELECT 'ignored in aborted transaction';",
          'ROLLBACK;',
          `SELECT count(*) FROM ${table}_tx WHERE id = 6;`,
          'SELECT pg_backend_pid() > 0;',
        ].join('\n') + '\n',
      );
      assert.equal(errors.code, 0, errors.stderr);
      assert.match(errors.stderr, /division by zero/);
      assert.match(errors.stderr, /duplicate key value violates unique constraint/);
      assert.match(errors.stderr, /current transaction is aborted/);
      assert.deepEqual(errors.stdout.trim().split('\n'), ['after error', '0', 't']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await dropTables(t, table, `${table}_tx`);
    }
  },
});
