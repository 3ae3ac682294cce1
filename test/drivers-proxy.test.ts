/**
 * The driver conformance suite (test/drivers/) through pgscale's proxy in transaction pooling
 * mode: psql, pgbench (simple, extended, prepared), node-postgres, postgres.js, psycopg2 and
 * pgjdbc must not notice that their server connections are shared.
 */
import { after, before, describe, test } from 'node:test';
import { startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { driverScenarios } from './drivers/suite.js';
import type { DriverTarget } from './drivers/target.js';

describe('driver conformance through the pgscale proxy (transaction pooling, 20 server connections)', () => {
  let fx: ProxyFixture;
  let target: DriverTarget;

  before(async () => {
    fx = await startProxyFixture({ default_pool_size: 20, max_client_conn: 2000 }, { max_connections: 400 });
    target = {
      host: '127.0.0.1',
      port: fx.port,
      database: 'app',
      user: 'app',
      password: fx.appPassword,
      admin: { user: 'postgres', password: fx.superPassword, port: fx.serverPort, host: '127.0.0.1' },
    };
  });
  after(async () => {
    await fx.close();
  });

  for (const scenario of driverScenarios()) {
    test(scenario.name, () => scenario.run(target));
  }
});
