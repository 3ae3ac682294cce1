/** Compiles and runs PgjdbcScenarios.java against Debian's pgjdbc (libpostgresql-jdbc-java). */
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../harness.js';
import type { ScenarioFactory } from './scenario.js';
import type { DriverTarget } from './target.js';
import { dropTables, expectSuccess, required, run, uniqueName } from './util.js';

const source = fileURLToPath(new URL('./PgjdbcScenarios.java', import.meta.url));

export const pgjdbcScenario: ScenarioFactory = (tools) => ({
  name: 'pgjdbc: prepareThreshold=1 across transactions, batches, types, statement_timeout, fetch size',
  async run(t: DriverTarget) {
    const javac = required(tools.javac, 'javac', 'install a JDK (default-jdk-headless)');
    const java = required(tools.java, 'java', 'install a JDK (default-jdk-headless)');
    if (!existsSync(tools.pgjdbcJar))
      throw new Error(`${tools.pgjdbcJar} missing: install libpostgresql-jdbc-java`);
    const prefix = uniqueName('pgjdbc');
    const classes = tempDir('pgscale-drivers-java-');
    try {
      expectSuccess(
        await run(javac, ['-encoding', 'UTF-8', '-cp', tools.pgjdbcJar, '-d', classes, source], {
          timeoutMs: 60_000,
        }),
        'javac',
      );
      const r = await run(
        java,
        ['-Dfile.encoding=UTF-8', '-cp', `${classes}:${tools.pgjdbcJar}`, 'PgjdbcScenarios'],
        {
          env: {
            ...process.env,
            DRV_HOST: t.host,
            DRV_PORT: String(t.port),
            DRV_DATABASE: t.database,
            DRV_USER: t.user,
            DRV_PASSWORD: t.password,
            DRV_TABLE: prefix,
          },
          timeoutMs: 60_000,
        },
      );
      expectSuccess(r, 'PgjdbcScenarios');
      assert.equal(r.stdout.trim().split('\n').length, 5, r.stdout);
    } finally {
      rmSync(classes, { recursive: true, force: true });
      await dropTables(t, `${prefix}_prep`, `${prefix}_batch`);
    }
  },
});
