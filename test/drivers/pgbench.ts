/**
 * pgbench: initialisation (COPY, VACUUM, primary keys) and the TPC-B-like script over the three
 * query protocols: simple Query, extended with unnamed statements, and named prepared statements
 * (`-M prepared`, the mode transaction poolers historically break). pgbench's table names are
 * fixed, so this scenario owns the `pgbench_*` tables of the target database while it runs.
 */
import assert from 'node:assert/strict';
import type { ScenarioFactory } from './scenario.js';
import type { DriverTarget } from './target.js';
import { adminScalar, dropTables, expectSuccess, libpqEnv, required, run } from './util.js';

const CLIENTS = 8;
const TXNS = 200;
const TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'];

export const pgbenchScenario: ScenarioFactory = (tools) => ({
  name: 'pgbench: -i -s 1, then simple, extended and prepared protocol runs',
  async run(t: DriverTarget) {
    const pgbench = required(
      tools.pgbench,
      'pgbench',
      'install postgresql-contrib or the PostgreSQL client tools',
    );
    const env = libpqEnv(t);
    try {
      const init = expectSuccess(
        await run(pgbench, ['-i', '-s', '1', '-q'], { env, timeoutMs: 60_000 }),
        'pgbench -i',
      );
      assert.match(init.stderr, /done in/);
      assert.equal(await adminScalar(t, 'SELECT count(*) FROM pgbench_accounts'), '100000');
      for (const mode of ['simple', 'extended', 'prepared'] as const) {
        // pgbench vacuums and truncates pgbench_history before each run (no -n).
        const r = expectSuccess(
          // A guard against a hang, not a speed check: a shared CI host ran 1,600 transactions
          // at under 30 per second while the demo test saturated both cores.
          await run(pgbench, ['-M', mode, '-c', String(CLIENTS), '-j', '2', '-t', String(TXNS)], {
            env,
            timeoutMs: 240_000,
          }),
          `pgbench -M ${mode}`,
        );
        const out = r.stdout + r.stderr;
        assert.match(out, new RegExp(`query mode: ${mode}`));
        assert.match(
          out,
          new RegExp(`number of transactions actually processed: ${CLIENTS * TXNS}/${CLIENTS * TXNS}`),
          out,
        );
        assert.match(out, /number of failed transactions: 0 \(0\.000%\)/, out);
        assert.doesNotMatch(
          out.replace(/number of failed transactions: 0 \(0\.000%\)/, ''),
          /fail|abort|error/i,
          out,
        );
        assert.equal(
          await adminScalar(t, 'SELECT count(*) FROM pgbench_history'),
          String(CLIENTS * TXNS),
          mode,
        );
        // TPC-B keeps the books balanced: every delta lands on one account, teller and branch.
        const balanced = await adminScalar(
          t,
          `SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(bbalance) FROM pgbench_branches)
              AND (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(bbalance) FROM pgbench_branches)`,
        );
        assert.equal(balanced, 'true', `balances agree after -M ${mode}`);
      }
    } finally {
      await dropTables(t, ...TABLES);
    }
  },
});
