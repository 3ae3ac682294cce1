/**
 * The real-driver conformance suite: what psql, pgbench, node-postgres, postgres.js, psycopg2
 * and pgjdbc do in ordinary applications, each as a self-contained scenario that creates and
 * drops its own uniquely named tables and asserts with node:assert (throwing on failure). The
 * same list runs against any `DriverTarget`: a directly connected PostgreSQL to prove the
 * scenarios, and pgscale's transaction-pooling proxy to prove the proxy.
 */
import { concurrencyScenario } from './concurrency.js';
import { nodePgScenario } from './node-pg.js';
import { pgbenchScenario } from './pgbench.js';
import { pgjdbcScenario } from './pgjdbc.js';
import { postgresJsScenario } from './postgres-js.js';
import { psqlScenario } from './psql.js';
import { psycopg2Scenario } from './psycopg2.js';
import type { Scenario } from './scenario.js';
import { findClientTools } from './util.js';
import type { ClientTools } from './util.js';

export type { Scenario } from './scenario.js';
export type { DriverTarget } from './target.js';
export type { ClientTools } from './util.js';

export function driverScenarios(tools: ClientTools = findClientTools()): Scenario[] {
  return [
    psqlScenario,
    pgbenchScenario,
    nodePgScenario,
    postgresJsScenario,
    psycopg2Scenario,
    pgjdbcScenario,
    concurrencyScenario,
  ].map((make) => make(tools));
}
