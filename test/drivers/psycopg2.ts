/** Runs psycopg2_scenarios.py with the system Python (Debian's python3-psycopg2); see that file. */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { ScenarioFactory } from './scenario.js';
import type { DriverTarget } from './target.js';
import { dropTables, expectSuccess, libpqEnv, run, uniqueName } from './util.js';

const script = fileURLToPath(new URL('./psycopg2_scenarios.py', import.meta.url));

export const psycopg2Scenario: ScenarioFactory = (tools) => ({
  name: 'psycopg2: types, named cursor 50k rows, copy_expert 100k rows, savepoints, statement_timeout',
  async run(t: DriverTarget) {
    const prefix = uniqueName('psycopg2');
    try {
      const r = await run(tools.python, [script], {
        env: libpqEnv(t, { DRV_TABLE: prefix, PYTHONDONTWRITEBYTECODE: '1' }),
        timeoutMs: 60_000,
      });
      if (r.code !== 0 && /No module named 'psycopg2'/.test(r.stderr)) {
        throw new Error(`${tools.python} has no psycopg2: install python3-psycopg2\n${r.stderr}`);
      }
      expectSuccess(r, 'psycopg2_scenarios.py');
      assert.equal(r.stdout.trim().split('\n').length, 5, r.stdout);
    } finally {
      await dropTables(t, `${prefix}_copy`, `${prefix}_tx`);
    }
  },
});
