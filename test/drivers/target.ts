/**
 * What a driver scenario connects to. The conformance suite runs the same scenarios against a
 * directly connected PostgreSQL (proving the scenarios themselves) and, later, against pgscale's
 * transaction-pooling proxy; only the target changes. `admin` always names the real server with
 * a superuser, for set-up, clean-up and for checking results behind the proxy's back.
 */
import type { TestCluster } from '../harness.js';
import { readSecrets } from '../../src/cluster/secrets.js';

export interface DriverTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  /** superuser for setup */
  admin: { user: string; password: string; port: number; host: string };
}

/** The cluster's first primary, reached directly as the application role. */
export function directTarget(tc: TestCluster): DriverTarget {
  const node = tc.cluster.nodes()[0];
  if (!node) throw new Error('the test cluster has no nodes');
  const secrets = readSecrets(tc.cluster.dataDir);
  if (!secrets) throw new Error(`no secrets in ${tc.cluster.dataDir}: has the cluster been started?`);
  const { config } = tc.cluster;
  return {
    host: node.host,
    port: node.port,
    database: config.app.database,
    user: config.app.user,
    password: secrets.app,
    admin: { user: config.postgres.superuser, password: secrets.superuser, port: node.port, host: node.host },
  };
}
