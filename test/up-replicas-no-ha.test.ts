/**
 * add-replica and remove-replica under `pgscale up` without high availability: nobody but the
 * proxy service publishes the topology then, so the node list the controller re-reads must reach
 * the proxy's read sets through its reload (with HA, test/operator.test.ts covers the same).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { binarySets, cli, makeCluster, until, withoutHa } from './harness.js';
import type { TestCluster } from './harness.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { allNodes, loadConfig } from '../src/config/load.js';

const bins = binarySets()[0]!;

describe('add-replica and remove-replica under pgscale up without high availability', () => {
  let tc: TestCluster;
  let admin: pg.Client;
  let app: pg.Client;
  before(async () => {
    tc = await makeCluster(bins, { replicas: 1, extra: withoutHa });
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    const s = readSecrets(tc.cluster.dataDir)!;
    const port = tc.cluster.config.proxy.port;
    admin = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password: s.superuser,
      database: 'pgscale',
    });
    app = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: s.app, database: 'app' });
    admin.on('error', () => undefined);
    app.on('error', () => undefined);
    await admin.connect();
    // The app's pool and its read router exist before the nodes change.
    await app.connect();
    await app.query('SELECT 1');
  });
  after(async () => {
    await admin?.end().catch(() => undefined);
    await app?.end().catch(() => undefined);
    await cli(['down', '-c', tc.file], tc.env);
    await tc.cleanup();
  });

  /** SHOW NODES: the app's replicas by port, with whether each is in the read set. */
  const replicas = async () =>
    (
      await admin.query<{ database: string; role: string; addr: string; in_read_set: string }>('SHOW NODES')
    ).rows
      .filter((x) => x.database === 'app' && x.role !== 'primary')
      .map((x) => `${x.addr.split(':').pop()}:${x.in_read_set}`)
      .sort();

  test('an added replica enters the read set of a pool made before it', async () => {
    const add = await cli(['add-replica', '-c', tc.file], tc.env);
    assert.equal(add.code, 0, add.stderr + add.stdout);
    const nodes = allNodes(loadConfig(tc.file).config);
    const want = nodes
      .slice(1)
      .map((n) => `${n.port}:t`)
      .sort();
    await until(
      'both standbys in the read set',
      async () => JSON.stringify(await replicas()) === JSON.stringify(want),
      30_000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}; SHOW NODES replicas: ${JSON.stringify(await replicas())}`);
    });
  });

  test('a removed replica leaves it', async () => {
    const r = await cli(['remove-replica', '-c', tc.file, 's0n2'], tc.env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const s0n1 = allNodes(loadConfig(tc.file).config).find((n) => n.name === 's0n1')!;
    await until(
      's0n2 out of SHOW NODES',
      async () => JSON.stringify(await replicas()) === JSON.stringify([`${s0n1.port}:t`]),
      30_000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}; SHOW NODES replicas: ${JSON.stringify(await replicas())}`);
    });
  });
});
