/**
 * cluster.tls end to end, against real PostgreSQL: a cluster whose nodes serve TLS with
 * certificates from the cluster CA pgscale creates; the standbys stream over verified TLS
 * (pg_stat_ssl on the primary), the proxy's server connections are TLS, a standby added later
 * and a former primary after a switchover follow over TLS, verify-full refuses a primary whose
 * certificate names another host, and no key or password is readable by others or on a
 * command line.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { binarySets, cli, makeCluster, tempDir, until } from './harness.js';
import type { TestCluster } from './harness.js';
import { withClient } from '../src/cluster/sql.js';
import { readSecrets, writePrivate } from '../src/cluster/secrets.js';
import { chownToService } from '../src/cluster/run-as.js';
import { runningPid } from '../src/cluster/instance.js';
import { allNodes, loadConfig, parseConfig } from '../src/config/load.js';
import { Cluster } from '../src/cluster/cluster.js';
import type { NodeRef } from '../src/config/load.js';
import { INIT_DEFAULTS, renderConfig } from '../src/config/template.js';
import { ClusterTls } from '../src/cluster/tls.js';

interface StatusJson {
  nodes: { name: string; role: string; streaming: boolean }[];
}

/** The walsenders of `primary` with whether their connection is TLS, by standby name. */
async function senders(
  tc: TestCluster,
  primary: NodeRef,
  how: { tls: boolean } = { tls: true },
): Promise<Map<string, boolean>> {
  const rows = await withClient(
    { ...tc.cluster.target(primary), ...(how.tls ? {} : { sslRootCert: undefined }) },
    async (c) =>
      (
        await c.query<{ name: string; ssl: boolean }>(
          `SELECT r.application_name AS name, s.ssl
             FROM pg_stat_replication r JOIN pg_stat_ssl s ON s.pid = r.pid
            WHERE r.state = 'streaming'`,
        )
      ).rows,
  );
  return new Map(rows.map((r) => [r.name, r.ssl]));
}

async function status(tc: TestCluster): Promise<StatusJson> {
  const r = await cli(['status', '-c', tc.file, '--json'], tc.env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusJson;
}

/** Every file under `dir` with its mode. */
function walk(dir: string): { path: string; mode: number }[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return [{ path: p, mode: statSync(p).mode & 0o777 }, ...walk(p)];
    return e.isFile() ? [{ path: p, mode: statSync(p).mode & 0o777 }] : [];
  });
}

/** A key and a certificate from the cluster CA that name only `name` (never this host). */
function foreignPair(tc: TestCluster, name: string): { key: string; cert: string } {
  const dir = tempDir('pgscale-tls-foreign-');
  try {
    const ca = join(tc.cluster.dataDir, 'ca');
    const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'k.pem']);
    openssl(['req', '-new', '-key', 'k.pem', '-subj', `/CN=${name}`, '-out', 'r.csr']);
    writeFileSync(join(dir, 'ext.cnf'), `subjectAltName = DNS:${name}\n`);
    openssl([
      'x509',
      '-req',
      '-in',
      'r.csr',
      '-CA',
      join(ca, 'ca.crt'),
      '-CAkey',
      join(ca, 'ca.key'),
      '-set_serial',
      '7',
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
      '-out',
      'c.pem',
    ]);
    return { key: readFileSync(join(dir, 'k.pem'), 'utf8'), cert: readFileSync(join(dir, 'c.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const sets = binarySets();
if (sets.length === 0) throw new Error('no PostgreSQL binaries found for the integration tests');

for (const bins of sets) {
  describe(`cluster.tls with PostgreSQL ${bins.version} (${bins.source})`, () => {
    let tc: TestCluster;
    const node = (name: string) => tc.cluster.nodes().find((n) => n.name === name)!;

    before(async () => {
      tc = await makeCluster(bins, { replicas: 1, tls: true });
      const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
      assert.equal(r.code, 0, r.stderr + r.stdout);
    });
    after(async () => {
      await tc.cleanup();
    });

    test('the standby streams over TLS from the primary (pg_stat_ssl)', async () => {
      const s = await until(
        's0n1 streaming',
        async () => {
          const m = await senders(tc, node('s0n0'));
          return m.has('s0n1') && m;
        },
        30_000,
      );
      assert.equal(s.get('s0n1'), true);
      const hba = readFileSync(join(tc.cluster.paths('s0n0').pgdata, 'pg_hba.conf'), 'utf8');
      assert.match(
        hba,
        /^hostssl\s+replication\s+replicator\s+127\.0\.0\.1\/32\s+scram-sha-256 clientcert=verify-ca$/m,
      );
      const auto = readFileSync(join(tc.cluster.paths('s0n1').pgdata, 'postgresql.auto.conf'), 'utf8');
      assert.match(auto, /sslmode=verify-full sslrootcert=/);
    });

    test('replication takes a client certificate from the cluster CA besides the password', async () => {
      const p = node('s0n0');
      const password = readSecrets(tc.cluster.dataDir)!.replicator;
      const dir = tc.cluster.tls.dir;
      const replicate = async (pair: { cert: string; key: string } | null) => {
        const c = new pg.Client({
          host: p.host,
          port: p.port,
          user: 'replicator',
          password,
          database: 'postgres',
          replication: 'true',
          ssl: {
            ca: readFileSync(tc.cluster.tls.rootCert),
            ...(pair ? { cert: readFileSync(pair.cert), key: readFileSync(pair.key) } : {}),
          },
        } as pg.ClientConfig);
        c.on('error', () => undefined);
        await c.connect();
        try {
          return (await c.query<{ systemid: string }>('IDENTIFY_SYSTEM')).rows[0]!.systemid;
        } finally {
          await c.end().catch(() => undefined);
        }
      };
      await assert.rejects(replicate(null), /connection requires a valid client certificate/);
      assert.match(await replicate({ cert: join(dir, 's0n1.crt'), key: join(dir, 's0n1.key') }), /^\d+$/);
    });

    test('a client through the proxy works (pg, psql) and the proxy reaches the nodes over TLS', async () => {
      const url = (await cli(['url', '-c', tc.file], tc.env)).stdout.trim();
      await withClient(tc.cluster.target(node('s0n0'), 'app'), (c) =>
        c.query('CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY); GRANT ALL ON t TO app'),
      );
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query('INSERT INTO t VALUES (1)');
        assert.equal((await c.query<{ n: string }>('SELECT count(*) AS n FROM t')).rows[0]!.n, '1');
      } finally {
        await c.end();
      }
      if (bins.psql) {
        const u = new URL(url);
        const r = spawnSync(
          bins.psql,
          ['-At', '-h', u.hostname, '-p', u.port, '-U', 'app', '-d', 'app', '-c', 'SELECT count(*) FROM t'],
          {
            env: { ...process.env, PGPASSWORD: decodeURIComponent(u.password) },
            encoding: 'utf8',
          },
        );
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim(), '1');
      }
      const proxied = await withClient(
        tc.cluster.target(node('s0n0')),
        async (q) =>
          (
            await q.query<{ ssl: boolean }>(
              `SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
              WHERE a.usename = 'app' AND a.backend_type = 'client backend'`,
            )
          ).rows,
      );
      assert.ok(proxied.length > 0, 'the proxy holds server connections as app');
      assert.ok(
        proxied.every((r) => r.ssl),
        JSON.stringify(proxied),
      );
    });

    test('verify-full: a standby refuses a primary whose certificate names another host', async () => {
      const primary = node('s0n0');
      const files = { cert: join(tc.cluster.tls.dir, 's0n0.crt'), key: join(tc.cluster.tls.dir, 's0n0.key') };
      const good = { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') };
      const bad = foreignPair(tc, 'elsewhere.example');
      const log = tc.cluster.paths('s0n1').log;
      const logBefore = readFileSync(log, 'utf8').length;
      const swap = async (p: { cert: string; key: string }) => {
        writePrivate(files.key, p.key, true);
        writeFileSync(files.cert, p.cert);
        chownToService(files.cert);
        await withClient(plain, (c) => c.query('SELECT pg_reload_conf()'));
      };
      // pgscale's own control connections verify too; the test reloads over loopback without TLS.
      const plain = { ...tc.cluster.target(primary), sslRootCert: undefined };
      try {
        await swap(bad);
        // The primary serves the foreign certificate now (a fresh TLS session sees it).
        await until('the primary serves the foreign certificate', () => {
          const r = spawnSync(
            'openssl',
            ['s_client', '-starttls', 'postgres', '-connect', `127.0.0.1:${primary.port}`],
            {
              input: '',
              encoding: 'utf8',
            },
          );
          return Promise.resolve(/CN\s*=\s*elsewhere\.example/.test(r.stdout));
        });
        await assert.rejects(
          withClient(tc.cluster.target(primary), (c) => c.query('SELECT 1')),
          /does not match certificate's altnames/,
        );
        await withClient(plain, (c) =>
          c.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 's0n1'`,
          ),
        );
        const refused = await until(
          's0n1 refusing the certificate',
          () => {
            const text = readFileSync(log, 'utf8').slice(logBefore);
            return Promise.resolve(/does not match host name "localhost"/.test(text) && text);
          },
          20_000,
        );
        assert.match(refused, /elsewhere\.example/);
        assert.equal(
          (await senders(tc, primary, { tls: false })).get('s0n1'),
          undefined,
          's0n1 must not stream',
        );
      } finally {
        await swap(good);
      }
      await until(
        's0n1 streaming again',
        async () => (await senders(tc, primary)).get('s0n1') === true,
        30_000,
      );
    });

    test('a standby added after up clones and streams over TLS', async () => {
      const add = await cli(['add-replica', '-c', tc.file], tc.env);
      assert.equal(add.code, 0, add.stderr + add.stdout);
      assert.match(add.stdout, /added s0n2/);
      await until(
        's0n2 streaming over TLS',
        async () => (await senders(tc, node('s0n0'))).get('s0n2') === true,
        30_000,
      );
    });

    test('after a switchover the former primary follows the new one over TLS', async () => {
      const sw = await cli(['switchover', '-c', tc.file, '--to', 's0n1'], tc.env);
      assert.equal(sw.code, 0, sw.stderr + sw.stdout);
      await until(
        's0n1 primary with s0n0 and s0n2 streaming',
        async () => {
          const st = await status(tc);
          const roles = Object.fromEntries(st.nodes.map((n) => [n.name, n.role]));
          if (roles.s0n1 !== 'primary') return false;
          const s = await senders(tc, node('s0n1'));
          return s.get('s0n0') === true && s.get('s0n2') === true;
        },
        60_000,
      );
    });

    test('kill -9 of the primary: a standby takes over, and the old primary rejoins over TLS', async () => {
      const pid = runningPid(tc.cluster.paths('s0n1').pgdata);
      assert.ok(pid, 's0n1 runs as the primary');
      process.kill(pid, 'SIGKILL');
      const after = await until(
        'a new primary with both others streaming over TLS',
        async () => {
          const st = await status(tc);
          const primary = st.nodes.find((n) => n.role === 'primary' && n.name !== 's0n1');
          if (!primary) return false;
          const s = await senders(tc, node(primary.name));
          const others = tc.cluster.nodes().filter((n) => n.name !== primary.name);
          return others.every((n) => s.get(n.name) === true) && primary.name;
        },
        120_000,
      );
      assert.notEqual(after, 's0n1');
    });

    test('keys and passwords: never readable by others, never on a command line', () => {
      const dd = tc.cluster.dataDir;
      const files = walk(dd);
      const mode = (p: string) => files.find((f) => f.path === p)?.mode;
      assert.equal(mode(join(dd, 'ca')), 0o700);
      assert.equal(mode(join(dd, 'ca', 'ca.key')), 0o600);
      assert.equal(mode(join(dd, 'tls')), 0o700);
      for (const n of tc.cluster.nodes()) assert.equal(mode(join(dd, 'tls', `${n.name}.key`)), 0o600, n.name);
      const secrets = readSecrets(dd)!;
      const caKey = readFileSync(join(dd, 'ca', 'ca.key'), 'utf8');
      const keyLines = caKey.split('\n').filter((l) => l && !l.startsWith('-----'));
      for (const f of files) {
        if ((f.mode & 0o004) === 0 || statSync(f.path).isDirectory()) continue;
        const text = readFileSync(f.path, 'latin1');
        assert.doesNotMatch(text, /PRIVATE KEY/, `${f.path} is world-readable and holds a private key`);
        for (const v of Object.values(secrets) as string[]) {
          assert.ok(!text.includes(v), `${f.path} is world-readable and holds a password`);
        }
      }
      const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      for (const l of [...keyLines, ...(Object.values(secrets) as string[])])
        assert.ok(!ps.includes(l), 'secret in ps');
      assert.doesNotMatch(ps, /PRIVATE KEY/);
      const logs = readdirSync(join(dd, 'logs'))
        .map((f) => readFileSync(join(dd, 'logs', f), 'utf8'))
        .join();
      for (const l of keyLines) assert.ok(!logs.includes(l), 'key material in a log');
    });
  });
}

test('doctor lists the certificates and warns about one that expires within 30 days', async () => {
  const dir = tempDir('pgscale-tls-doctor-');
  try {
    const text = renderConfig({ ...INIT_DEFAULTS, replicas: 1, tls: true }).replace(
      '    mode: on\n',
      '    mode: on\n    node_cert_days: 10\n',
    );
    const file = join(dir, 'pgscale.yaml');
    writeFileSync(file, text);
    const loaded = parseConfig(text, file);
    const tls = new ClusterTls(loaded);
    for (const n of allNodes(loaded.config)) tls.nodeFiles(n);
    const r = await cli(['doctor', '-c', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /✓ cluster CA\s+until .* \(36\d\d days\)\n/);
    assert.match(r.stdout, /⚠ s0n1\s+until .* \(9 days\) — expires within 30 days/);
    const json = JSON.parse((await cli(['doctor', '-c', file, '--json'])).stdout) as {
      certificates: { what: string; daysLeft: number }[];
    };
    assert.deepEqual(
      json.certificates.map((c) => [c.what, c.daysLeft < 30]),
      [
        ['cluster CA', false],
        ['s0n0', true],
        ['s0n1', true],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('turning cluster.tls on for an existing cluster: the next up serves TLS and the standby verifies', async () => {
  const tc = await makeCluster(sets[0]!, { replicas: 1 });
  try {
    await tc.cluster.up();
    const [p, s] = tc.cluster.nodes();
    const auto = () => readFileSync(join(tc.cluster.paths(s!.name).pgdata, 'postgresql.auto.conf'), 'utf8');
    assert.match(auto(), /sslmode=prefer/);
    await tc.cluster.down();
    writeFileSync(tc.file, readFileSync(tc.file, 'utf8').replace('    mode: off', '    mode: on'));
    const on = new Cluster(loadConfig(tc.file), undefined, tc.bins);
    await on.up();
    assert.match(auto(), /sslmode=verify-full/);
    const m = await until('s0n1 streaming over TLS', async () => {
      const x = await senders({ ...tc, cluster: on }, p!);
      return x.get('s0n1') === true && x;
    });
    assert.equal(m.get('s0n1'), true);
    await on.down();
  } finally {
    await tc.cleanup();
  }
});
