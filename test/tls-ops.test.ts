/**
 * The TLS options for running in production, against real PostgreSQL: cluster.tls.hostssl_only
 * (no pg_hba line without TLS, loopback included, while provisioning, status, psql NODE, the HA
 * probes, replication, the proxy and a switchover all keep working), proxy.tls.cluster_ca (the
 * proxy presents a certificate from the cluster CA, which clients verify with verify-full), and
 * `pgscale rotate-certs` (new certificates served to new connections, open TLS sessions kept).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { binarySets, cli, makeCluster, tempDir, until } from './harness.js';
import type { TestCluster } from './harness.js';
import { withClient } from '../src/cluster/sql.js';
import { servedSerial } from '../src/cluster/tls-rotate.js';
import type { RotatedCertificate } from '../src/cluster/tls-rotate.js';

interface StatusJson {
  nodes: { name: string; role: string; streaming: boolean }[];
}

const PROXY_NAME = 'proxy.pgscale.test';

/** hostssl_only on the nodes; the proxy requires TLS and presents a certificate from the cluster CA. */
const tlsOps = (yaml: string) =>
  yaml
    .replace('    mode: on\n', '    mode: on\n    hostssl_only: true\n')
    .replace(
      'proxy:\n  listen: 127.0.0.1\n',
      `proxy:\n  listen: 127.0.0.1\n  tls:\n    mode: require\n    cluster_ca: true\n    cert_names: [${PROXY_NAME}]\n`,
    );

const sets = binarySets();
if (sets.length === 0) throw new Error('no PostgreSQL binaries found for the integration tests');
const bins = sets[0]!;

describe(`TLS for production with PostgreSQL ${bins.version} (${bins.source})`, () => {
  let tc: TestCluster;
  let app: { user: string; password: string; database: string };
  const node = (name: string) => tc.cluster.nodes().find((n) => n.name === name)!;
  const proxyAt = () => ({ host: '127.0.0.1', port: tc.cluster.config.proxy.port });
  /** A pg client of the application through the proxy, verifying it by the cluster CA. */
  const proxyClient = (host = '127.0.0.1') =>
    new pg.Client({
      ...app,
      host,
      port: tc.cluster.config.proxy.port,
      ssl: { ca: readFileSync(tc.cluster.tls.rootCert), rejectUnauthorized: true },
    });
  const status = async (): Promise<StatusJson> => {
    const r = await cli(['status', '-c', tc.file, '--json'], tc.env);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as StatusJson;
  };
  /** Standbys streaming from `primary`, each over TLS. */
  const tlsStandbys = async (primary: string) =>
    withClient(tc.cluster.target(node(primary)), async (c) =>
      (
        await c.query<{ name: string }>(
          `SELECT r.application_name AS name FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)
            WHERE r.state = 'streaming' AND s.ssl`,
        )
      ).rows.map((r) => r.name),
    );

  before(async () => {
    tc = await makeCluster(bins, { replicas: 1, tls: true, extra: tlsOps });
    const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const s = tc.cluster.secrets();
    app = { user: 'app', password: s.app, database: tc.cluster.config.app.database };
    await withClient(tc.cluster.target(node('s0n0'), app.database), (c) =>
      c.query('CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY); GRANT ALL ON t TO app'),
    );
  });
  after(async () => {
    await tc.cleanup();
  });

  test('hostssl_only: every pg_hba.conf line is hostssl; a connection without TLS on 127.0.0.1 is refused (28000)', async () => {
    for (const n of tc.cluster.nodes()) {
      const rules = readFileSync(join(tc.cluster.paths(n.name).pgdata, 'pg_hba.conf'), 'utf8')
        .split('\n')
        .filter((l) => l.trim() && !l.startsWith('#'));
      assert.ok(rules.length > 0);
      assert.deepEqual(
        rules.filter((l) => !l.startsWith('hostssl ')),
        [],
        `${n.name}: only hostssl lines`,
      );
    }
    const plain = { ...tc.cluster.target(node('s0n0')), host: '127.0.0.1', sslRootCert: undefined };
    await assert.rejects(
      withClient(plain, (c) => c.query('SELECT 1')),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, '28000', e.message);
        assert.match(e.message, /no encryption/);
        return true;
      },
    );
    // The same over verified TLS is let in.
    await withClient({ ...tc.cluster.target(node('s0n0')), host: '127.0.0.1' }, (c) => c.query('SELECT 1'));
  });

  test('status, psql NODE and replication work with TLS only', async () => {
    await until('s0n1 streaming over TLS', async () => (await tlsStandbys('s0n0')).includes('s0n1'), 60_000);
    const st = await status();
    assert.deepEqual(st.nodes.map((n) => [n.name, n.role]).sort(), [
      ['s0n0', 'primary'],
      ['s0n1', 'replica'],
    ]);
    const q = await cli(
      [
        'psql',
        '-c',
        tc.file,
        's0n1',
        '--',
        '-At',
        '-c',
        'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      ],
      tc.env,
    );
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout.trim(), 't');
  });

  test('proxy.tls.cluster_ca: clients verify the proxy with the cluster CA (verify-full, pg and psql); plain TCP is refused', async () => {
    const cert = new X509Certificate(readFileSync(join(tc.cluster.tls.dir, 'pgscale-proxy.crt')));
    const ca = new X509Certificate(readFileSync(tc.cluster.tls.rootCert));
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'issued by the cluster CA');
    assert.match(cert.subjectAltName ?? '', new RegExp(`DNS:${PROXY_NAME.replace(/\./g, '\\.')}`));
    const c = proxyClient();
    await c.connect();
    try {
      await c.query('INSERT INTO t VALUES (1)');
      const r = await c.query<{ ssl: boolean }>('SELECT count(*)::int AS n FROM t');
      assert.deepEqual(r.rows, [{ n: 1 }]);
    } finally {
      await c.end();
    }
    // A name the certificate does not hold is refused by verify-full.
    const other = new pg.Client({
      ...app,
      host: '127.0.0.1',
      port: proxyAt().port,
      ssl: { ca: readFileSync(tc.cluster.tls.rootCert), servername: 'elsewhere.example' },
    });
    other.on('error', () => undefined);
    await assert.rejects(other.connect(), /elsewhere\.example|altnames|Hostname/i);
    const plain = new pg.Client({ ...app, ...proxyAt() });
    plain.on('error', () => undefined);
    await assert.rejects(plain.connect(), /SSL|TLS|encryption/i);
    if (bins.psql) {
      const r = spawnSync(
        bins.psql,
        [
          '-At',
          `host=localhost port=${proxyAt().port} dbname=${app.database} user=app sslmode=verify-full sslrootcert=${tc.cluster.tls.rootCert}`,
          '-c',
          'SELECT count(*) FROM t',
        ],
        { env: { ...process.env, PGPASSWORD: app.password }, encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), '1');
    }
  });

  test('rotate-certs --all: new certificates served to new connections, open TLS sessions kept', async () => {
    const n0 = node('s0n0');
    const direct = new pg.Client({
      ...tc.cluster.target(n0),
      ssl: { ca: readFileSync(tc.cluster.tls.rootCert), rejectUnauthorized: true },
    });
    const viaProxy = proxyClient();
    await direct.connect();
    await viaProxy.connect();
    try {
      const before = {
        node: await servedSerial(n0.host, n0.port),
        proxy: await servedSerial(proxyAt().host, proxyAt().port),
      };
      const none = await cli(['rotate-certs', '-c', tc.file, '--json'], tc.env);
      assert.equal(none.code, 0, none.stderr + none.stdout);
      const fresh = (JSON.parse(none.stdout) as { certificates: RotatedCertificate[] }).certificates;
      assert.ok(
        fresh.every((r) => !r.renewed && r.loaded === 'unchanged'),
        none.stdout,
      );

      const r = await cli(['rotate-certs', '-c', tc.file, '--all', '--json'], tc.env);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const rotated = (JSON.parse(r.stdout) as { certificates: RotatedCertificate[] }).certificates;
      assert.deepEqual(rotated.map((x) => x.what).sort(), ['proxy', 's0n0', 's0n1']);
      for (const x of rotated) {
        assert.ok(x.renewed, x.what);
        assert.equal(x.loaded, 'served', `${x.what}: ${x.error ?? ''}`);
        assert.notEqual(x.after.serial, x.before!.serial);
        assert.ok(Date.parse(x.after.validTo) >= Date.parse(x.before!.validTo), x.what);
      }
      const byName = new Map(rotated.map((x) => [x.what, x]));
      assert.equal(before.node, byName.get('s0n0')!.before!.serial);
      assert.equal(await servedSerial(n0.host, n0.port), byName.get('s0n0')!.after.serial);
      assert.equal(await servedSerial(proxyAt().host, proxyAt().port), byName.get('proxy')!.after.serial);
      assert.notEqual(before.proxy, byName.get('proxy')!.after.serial);
      // The sessions opened before the rotation go on, on their TLS session.
      assert.deepEqual((await direct.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
      assert.deepEqual((await viaProxy.query('SELECT count(*)::int AS n FROM t')).rows, [{ n: 1 }]);
      // New connections verify the new certificates by the same CA.
      const c = proxyClient();
      await c.connect();
      await c.end();
      await until('s0n1 streaming again', async () => (await tlsStandbys('s0n0')).includes('s0n1'), 60_000);
    } finally {
      await direct.end().catch(() => undefined);
      await viaProxy.end().catch(() => undefined);
    }
  });

  test('a switchover with TLS only: the former primary follows over TLS, writes go on through the proxy', async () => {
    const sw = await cli(['switchover', '-c', tc.file, '--to', 's0n1'], tc.env);
    assert.equal(sw.code, 0, sw.stderr + sw.stdout);
    await until(
      's0n0 streaming from s0n1 over TLS',
      async () => (await tlsStandbys('s0n1')).includes('s0n0'),
      90_000,
    );
    await until(
      'a write through the proxy',
      async () => {
        const c = proxyClient();
        c.on('error', () => undefined);
        await c.connect();
        try {
          await c.query('INSERT INTO t VALUES (2) ON CONFLICT DO NOTHING');
          return true;
        } finally {
          await c.end().catch(() => undefined);
        }
      },
      30_000,
    );
  });

  test('init --tls creates the CA at once; destroy removes that data directory', async () => {
    const dir = tempDir('pgscale-init-tls-');
    try {
      const r = await cli(['init', '--dir', dir, '--tls', '--replicas', '0']);
      assert.equal(r.code, 0, r.stderr);
      const data = /created the cluster CA: (\S+)\/tls\/ca\.crt/.exec(r.stdout)?.[1];
      assert.ok(data, r.stdout);
      const ca = new X509Certificate(readFileSync(join(data, 'ca', 'ca.crt')));
      assert.ok(ca.ca);
      assert.equal(readFileSync(join(data, 'tls', 'ca.crt'), 'utf8'), ca.toString());
      const d = await cli(['destroy', '--yes', '-c', join(dir, 'pgscale.yaml')]);
      assert.equal(d.code, 0, d.stderr);
      assert.ok(!existsSync(data));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad input: rotate-certs with --all and --days, and on a cluster without TLS, say what is wrong', async () => {
    const both = await cli(['rotate-certs', '-c', tc.file, '--all', '--days', '3'], tc.env);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--all or --days, not both/);
    const days = await cli(['rotate-certs', '-c', tc.file, '--days', 'soon'], tc.env);
    assert.equal(days.code, 2);
    assert.match(days.stderr, /--days must be a whole number/);
    const plain = await makeCluster(bins, { replicas: 0 });
    try {
      const r = await cli(['rotate-certs', '-c', plain.file], plain.env);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /nothing to rotate: cluster\.tls\.mode is off/);
    } finally {
      await plain.cleanup();
    }
  });
});

describe('pgscale reload renews the certificates about to expire', () => {
  test('node_cert_days 20: a reload (the file unchanged) issues each node a new certificate, which it serves', async () => {
    const tc = await makeCluster(bins, {
      replicas: 0,
      tls: true,
      extra: (y) => y.replace('    mode: on\n', '    mode: on\n    node_cert_days: 20\n'),
    });
    try {
      const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
      assert.equal(up.code, 0, up.stderr + up.stdout);
      const n0 = tc.cluster.nodes()[0]!;
      const before = await servedSerial(n0.host, n0.port);
      const r = await cli(['reload', '-c', tc.file], tc.env);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, new RegExp(`certificate ${n0.name} renewed \\(valid to .*; served\\)`));
      assert.match(r.stdout, /no change: the cluster runs with what/);
      assert.notEqual(await servedSerial(n0.host, n0.port), before);
    } finally {
      await cli(['down', '-c', tc.file], tc.env);
      await tc.cleanup();
    }
  });
});
