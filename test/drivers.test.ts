/**
 * The driver conformance suite (test/drivers/) against a directly connected PostgreSQL: one
 * node, no replicas, started with pgscale's own cluster code. This run proves the scenarios;
 * the proxy's test runs the same list against a `proxyTarget`.
 */
import { after, before, describe, test } from 'node:test';
import { binarySets, makeCluster } from './harness.js';
import type { TestCluster } from './harness.js';
import { driverScenarios } from './drivers/suite.js';
import { directTarget } from './drivers/target.js';
import type { DriverTarget } from './drivers/target.js';

const bins = binarySets()[0];
if (!bins) throw new Error('no PostgreSQL binaries found for the integration tests');

describe(`driver conformance against PostgreSQL ${bins.version} directly`, () => {
  let tc: TestCluster | undefined;
  let target: DriverTarget;

  before(async () => {
    tc = await makeCluster(bins, {
      replicas: 0,
      // 300 concurrent clients in the concurrency scenario, plus admin connections.
      extra: (yaml) => yaml.replace('  parameters: {}', '  parameters:\n    max_connections: 400'),
    });
    await tc.cluster.up();
    target = directTarget(tc);
  });
  after(async () => {
    await tc?.cleanup();
  });

  for (const scenario of driverScenarios()) {
    test(scenario.name, () => scenario.run(target));
  }
});
