import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allNodes, parseConfig } from '../config/load.js';
import type { LoadedConfig } from '../config/load.js';
import { INIT_DEFAULTS, renderConfig } from '../config/template.js';
import type { PgBinaries } from './binaries.js';
import { isLoopbackCidr, primaryConninfo, renderHba, renderNodeConf, subscriptionConninfo } from './conf.js';
import { ClusterTls, certCovers, proxyWithClusterTls, subjectAltNames } from './tls.js';

const yaml = (tls: boolean, extra = '') =>
  renderConfig({ ...INIT_DEFAULTS, replicas: 1, tls }).replace('    mode: on\n', `    mode: on\n${extra}`);

describe('subjectAltNames', () => {
  test('a DNS host is a DNS entry; an IP host an IP entry (and a DNS one for libpq before 14)', () => {
    assert.deepEqual(subjectAltNames('db1.Example.com'), [
      'DNS:db1.example.com',
      'DNS:localhost',
      'IP:127.0.0.1',
      'IP:::1',
    ]);
    assert.deepEqual(subjectAltNames('10.0.0.5'), [
      'IP:10.0.0.5',
      'DNS:10.0.0.5',
      'DNS:localhost',
      'IP:127.0.0.1',
      'IP:::1',
    ]);
    assert.deepEqual(subjectAltNames('fd00::5').slice(0, 2), ['IP:fd00::5', 'DNS:fd00::5']);
    assert.deepEqual(subjectAltNames('localhost'), ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
    assert.deepEqual(subjectAltNames('127.0.0.1'), [
      'IP:127.0.0.1',
      'DNS:127.0.0.1',
      'DNS:localhost',
      'IP:::1',
    ]);
  });
});

test('loopback ranges are told from the others', () => {
  for (const c of ['127.0.0.1/32', '127.0.0.0/8', '::1/128', '0:0:0:0:0:0:0:1/128'])
    assert.ok(isLoopbackCidr(c), c);
  for (const c of ['0.0.0.0/0', '10.0.0.0/8', '127.0.0.0/4', '::/0', '2001::1/128', '::1/64', '::/128'])
    assert.ok(!isLoopbackCidr(c), c);
});

describe('with cluster.tls on', () => {
  const on = parseConfig(
    yaml(true)
      .replace(
        'client_networks: [127.0.0.1/32, ::1/128]',
        'client_networks: [127.0.0.1/32, ::1/128, 10.1.0.0/16]',
      )
      .replace('  networks: [127.0.0.1/32, ::1/128]', '  networks: [127.0.0.1/32, 10.1.0.0/16]'),
    '/x/p.yaml',
  ).config;

  test('pg_hba requires TLS from beyond this host and keeps loopback as it was', () => {
    const rules = renderHba(on)
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(
      rules.map((l) => l.split(/\s+/).slice(0, 4).join(' ')),
      [
        'hostssl replication replicator 127.0.0.1/32',
        'hostssl replication replicator 10.1.0.0/16',
        'host all all 127.0.0.1/32',
        'host all all ::1/128',
        'hostssl all all 10.1.0.0/16',
      ],
    );
    // Replication also takes a client certificate from the cluster CA; other lines do not.
    assert.deepEqual(
      rules.map((l) => l.endsWith('scram-sha-256 clientcert=verify-ca')),
      [true, true, false, false, false],
    );
    const off = renderHba(parseConfig(yaml(false), '/x/p.yaml').config);
    assert.doesNotMatch(off, /hostssl|clientcert/);
    // The node's own address is this host: its agent's probes need no TLS there (not replication).
    const own = renderHba(on, '10.1.0.7').split('\n');
    assert.ok(
      own.some((l) => /^host\s+all\s+all\s+10\.1\.0\.7\/32\s+scram-sha-256$/.test(l)),
      own.join('\n'),
    );
    assert.ok(!own.some((l) => /^host\s+replication/.test(l)));
    assert.ok(renderHba(on, 'fd00::7').includes('fd00::7/128'));
    assert.deepEqual(renderHba(on, 'db7.example.com'), renderHba(on));
    assert.deepEqual(renderHba(on, '127.0.0.1'), renderHba(on));
    assert.doesNotMatch(renderHba(parseConfig(yaml(false), '/x/p.yaml').config, '10.1.0.7'), /10\.1\.0\.7/);
  });

  test("hostssl_only: every line is hostssl, loopback and the node's own address included", () => {
    const only = parseConfig(
      yaml(true, '    hostssl_only: true\n').replace(
        'client_networks: [127.0.0.1/32, ::1/128]',
        'client_networks: [127.0.0.1/32, ::1/128, 10.1.0.0/16]',
      ),
      '/x/p.yaml',
    ).config;
    const rules = renderHba(only, '10.1.0.7')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    assert.ok(rules.length >= 5, rules.join('\n'));
    assert.ok(
      rules.every((l) => l.startsWith('hostssl ')),
      rules.join('\n'),
    );
    assert.ok(rules.some((l) => /^hostssl\s+all\s+all\s+127\.0\.0\.1\/32\s/.test(l)));
    assert.ok(rules.some((l) => /^hostssl\s+all\s+all\s+10\.1\.0\.7\/32\s/.test(l)));
    // Without TLS on, the option is refused, naming what it needs.
    assert.throws(
      () =>
        parseConfig(
          yaml(false).replace('    mode: off\n', '    mode: off\n    hostssl_only: true\n'),
          '/x/p.yaml',
        ),
      /cluster\.tls\.hostssl_only: needs cluster\.tls\.mode: on/,
    );
  });

  test('each node serves TLS with its files; off, no ssl setting', () => {
    const bins = { dir: '/nonexistent/bin', major: 16 } as PgBinaries;
    const node = allNodes(on)[0]!;
    const conf = renderNodeConf({
      config: on,
      node,
      bins,
      archiveDir: '/a',
      archiveScript: '/s',
      peers: [],
      tls: { cert: '/d/tls/s0n0.crt', key: '/d/tls/s0n0.key', caCert: '/d/tls/ca.crt' },
    });
    assert.match(conf, /^ssl = on$/m);
    assert.match(conf, /^ssl_cert_file = '\/d\/tls\/s0n0\.crt'$/m);
    assert.match(conf, /^ssl_key_file = '\/d\/tls\/s0n0\.key'$/m);
    assert.match(conf, /^ssl_ca_file = '\/d\/tls\/ca\.crt'$/m);
    const plain = renderNodeConf({
      config: on,
      node,
      bins,
      archiveDir: '/a',
      archiveScript: '/s',
      peers: [],
      tls: null,
    });
    assert.doesNotMatch(plain, /^ssl/m);
  });

  test('standbys and shard moves verify the primary with the cluster CA', () => {
    const c = primaryConninfo({ host: '10.1.0.7', port: 5432 }, 's0n1', '/d/secrets/pgpass', '/d/tls/ca.crt');
    assert.match(c, /sslmode=verify-full sslrootcert=\/d\/tls\/ca\.crt/);
    assert.match(primaryConninfo({ host: 'h', port: 1 }, 'n', '/p'), /sslmode=prefer/);
    const pair = { cert: '/d/tls/s0n1.crt', key: '/d/tls/s0n1.key' };
    assert.match(
      primaryConninfo({ host: 'h', port: 1 }, 's0n1', '/p', '/d/tls/ca.crt', pair),
      /sslrootcert=\/d\/tls\/ca\.crt sslcert=\/d\/tls\/s0n1\.crt sslkey=\/d\/tls\/s0n1\.key/,
    );
    assert.doesNotMatch(primaryConninfo({ host: 'h', port: 1 }, 's0n1', '/p', null, pair), /sslcert/);
    const s = subscriptionConninfo({ host: 'h', port: 1 }, 'app', 'postgres', '/p', '/d/tls/ca.crt');
    assert.match(s, /sslmode=verify-full sslrootcert=\/d\/tls\/ca\.crt/);
  });
});

describe('the proxy inside up verifies the nodes with the cluster CA', () => {
  const proxy = parseConfig(yaml(true), '/x/p.yaml').config.proxy;
  test('unless proxy.server_tls names its own CA; a mode the user set is kept', () => {
    assert.deepEqual(proxyWithClusterTls(proxy, null), proxy);
    assert.deepEqual(proxyWithClusterTls(proxy, '/d/tls/ca.crt').server_tls, {
      mode: 'verify-full',
      ca_file: '/d/tls/ca.crt',
    });
    const verifyCa = { ...proxy, server_tls: { mode: 'verify-ca' as const, ca_file: null } };
    assert.deepEqual(proxyWithClusterTls(verifyCa, '/d/ca.crt').server_tls, {
      mode: 'verify-ca',
      ca_file: '/d/ca.crt',
    });
    const own = { ...proxy, server_tls: { mode: 'verify-full' as const, ca_file: '/mine.pem' } };
    assert.equal(proxyWithClusterTls(own, '/d/ca.crt'), own);
  });
});

describe('ClusterTls', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgscale-tls-'));
  chmodSync(dir, 0o755);
  after(() => rmSync(dir, { recursive: true, force: true }));
  const load = (text: string, sub: string): LoadedConfig => {
    mkdirSync(join(dir, sub), { recursive: true });
    const file = join(dir, sub, 'pgscale.yaml');
    writeFileSync(file, text);
    return parseConfig(text, file);
  };
  const mode = (p: string) => statSync(p).mode & 0o777;

  test('creates a CA (key 0600 in a 0700 directory) and node certificates naming their host', () => {
    const loaded = load(yaml(true).replace('host: localhost', 'host: 10.9.8.7'), 'own');
    const tls = new ClusterTls(loaded);
    const [n0, n1] = allNodes(loaded.config);
    const f0 = tls.nodeFiles(n0!);
    const f1 = tls.nodeFiles(n1!);
    const caDir = join(loaded.dataDir, 'ca');
    assert.equal(mode(caDir), 0o700);
    assert.equal(mode(join(caDir, 'ca.key')), 0o600);
    assert.equal(mode(tls.dir), 0o700);
    assert.equal(mode(f0.key), 0o600);
    assert.doesNotMatch(readFileSync(f0.cert, 'utf8'), /PRIVATE KEY/);
    const ca = new X509Certificate(readFileSync(f0.caCert));
    assert.ok(ca.ca);
    const c0 = new X509Certificate(readFileSync(f0.cert));
    assert.ok(c0.checkIssued(ca) && c0.verify(ca.publicKey));
    assert.ok(!c0.ca);
    // n0 is on 10.9.8.7 (an IP entry), n1 on localhost.
    assert.ok(certCovers(c0, '10.9.8.7'));
    assert.ok(certCovers(c0, 'localhost') && certCovers(c0, '127.0.0.1'));
    assert.ok(!certCovers(c0, '10.9.8.8'));
    assert.ok(!certCovers(c0, 'db.example.com'));
    const c1 = new X509Certificate(readFileSync(f1.cert));
    assert.ok(!certCovers(c1, '10.9.8.7'));
    // Valid for node_cert_days (730), the CA for 10 years.
    const days = (c: X509Certificate) => (Date.parse(c.validTo) - Date.now()) / 86_400_000;
    assert.ok(Math.abs(days(c0) - 730) < 2, c0.validTo);
    assert.ok(days(ca) > 3640, ca.validTo);
    // Kept while valid; issued again when the node's host changes.
    tls.nodeFiles(n0!);
    assert.equal(new X509Certificate(readFileSync(f0.cert)).serialNumber, c0.serialNumber);
    const moved = { ...n0!, host: 'db7.example.com' };
    tls.nodeFiles(moved);
    const again = new X509Certificate(readFileSync(f0.cert));
    assert.notEqual(again.serialNumber, c0.serialNumber);
    assert.ok(certCovers(again, 'db7.example.com') && !certCovers(again, '10.9.8.7'));
    assert.ok(again.checkPrivateKey(createPrivateKey(readFileSync(f0.key, 'utf8'))));
  });

  test('half a CA (a key without its certificate, or the reverse) is refused, never completed', () => {
    const loaded = load(yaml(true), 'half');
    new ClusterTls(loaded).ensureCa();
    const caDir = join(loaded.dataDir, 'ca');
    const first = readFileSync(join(caDir, 'ca.crt'), 'utf8');
    assert.deepEqual(readdirSync(caDir).sort(), ['ca.crt', 'ca.key']);
    for (const gone of ['ca.crt', 'ca.key']) {
      const keep = readFileSync(join(caDir, gone));
      rmSync(join(caDir, gone));
      assert.throws(
        () => new ClusterTls(loaded).ensureCa(),
        (e: Error) => e.message.includes(`without ${join(caDir, gone)}`) && /second CA/.test(e.message),
      );
      assert.ok(!existsSync(join(caDir, gone)), `${gone} was not made again`);
      writeFileSync(join(caDir, gone), keep);
    }
    new ClusterTls(loaded).ensureCa();
    assert.equal(readFileSync(join(caDir, 'ca.crt'), 'utf8'), first);
  });

  test('node_cert_dir: ready certificates are checked — one for another host is refused', () => {
    // Issue a pair for s0n0 with a CA of "another cluster", then hand its CA and pair over.
    const issuer = load(yaml(true).replace('host: localhost', 'host: db1.example.com'), 'issuer');
    const itls = new ClusterTls(issuer);
    const nodes = allNodes(issuer.config);
    for (const n of nodes) itls.nodeFiles(n);
    const ready = load(
      yaml(true, `    ca_cert: ${join(issuer.dataDir, 'ca', 'ca.crt')}\n    node_cert_dir: ${itls.dir}\n`),
      'ready',
    );
    const tls = new ClusterTls(ready);
    const [r0, r1] = allNodes(ready.config);
    // s0n1 was issued for localhost, where it runs: accepted and copied with a 0600 key.
    const f1 = tls.nodeFiles(r1!);
    assert.equal(mode(f1.key), 0o600);
    // s0n0 runs on localhost here, but its certificate names db1.example.com (and localhost):
    // the loopback names make it valid; moved to another host it is refused, naming the host.
    tls.nodeFiles(r0!);
    assert.throws(
      () => tls.nodeFiles({ ...r0!, host: 'db2.example.com' }),
      /s0n0\.crt does not name the node's host db2\.example\.com/,
    );
    // A certificate from another CA than ca_cert is refused too.
    const other = load(yaml(true), 'other');
    const otls = new ClusterTls(other);
    for (const n of allNodes(other.config)) otls.nodeFiles(n);
    const mixed = load(
      yaml(true, `    ca_cert: ${join(other.dataDir, 'ca', 'ca.crt')}\n    node_cert_dir: ${itls.dir}\n`),
      'mixed',
    );
    assert.throws(
      () => new ClusterTls(mixed).nodeFiles(allNodes(mixed.config)[1]!),
      /was not issued by cluster\.tls\.ca_cert/,
    );
  });
});

test('a CA key or a node key readable by others is refused, naming the file and the fix', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgscale-tls-mode-'));
  chmodSync(dir, 0o755);
  try {
    const mk = (sub: string, text: string): LoadedConfig => {
      mkdirSync(join(dir, sub), { recursive: true });
      const file = join(dir, sub, 'pgscale.yaml');
      writeFileSync(file, text);
      return parseConfig(text, file);
    };
    const first = mk('first', yaml(true));
    const ftls = new ClusterTls(first);
    for (const n of allNodes(first.config)) ftls.nodeFiles(n);
    const caKey = join(first.dataDir, 'ca', 'ca.key');
    chmodSync(caKey, 0o644);
    const own = mk(
      'own',
      yaml(true, `    ca_cert: ${join(first.dataDir, 'ca', 'ca.crt')}\n    ca_key: ${caKey}\n`),
    );
    assert.throws(
      () => new ClusterTls(own).nodeFiles(allNodes(own.config)[0]!),
      /cluster\.tls\.ca_key: .*ca\.key is readable by others \(mode 0644\); a private key must be 0600: chmod 600/,
    );
    chmodSync(caKey, 0o600);
    const nodeKey = join(ftls.dir, 's0n1.key');
    chmodSync(nodeKey, 0o640);
    const ready = mk(
      'ready',
      yaml(true, `    ca_cert: ${join(first.dataDir, 'ca', 'ca.crt')}\n    node_cert_dir: ${ftls.dir}\n`),
    );
    assert.throws(
      () => new ClusterTls(ready).nodeFiles(allNodes(ready.config)[1]!),
      /s0n1\.key is readable by others/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('cluster.tls settings', () => {
  const bad = (extra: string) => () => parseConfig(yaml(true, extra), '/x/p.yaml');
  test('the CA that issues or verifies the node certificates must be unambiguous', () => {
    assert.throws(bad('    ca_key: k.pem\n'), /cluster\.tls\.ca_key: needs cluster\.tls\.ca_cert/);
    assert.throws(
      bad('    node_cert_dir: certs\n'),
      /cluster\.tls\.node_cert_dir: needs cluster\.tls\.ca_cert/,
    );
    assert.throws(bad('    ca_cert: c.pem\n'), /cluster\.tls\.ca_cert: needs ca_key .* or node_cert_dir/);
    assert.throws(bad('    ca_cert: c.pem\n    ca_key: k\n    node_cert_dir: d\n'), /exclude each other/);
    assert.throws(bad('    node_cert_days: 1\n'), /cluster\.tls\.node_cert_days/);
    assert.throws(
      () => parseConfig(yaml(false).replace('    mode: off', '    mode: maybe'), '/x/p.yaml'),
      /cluster\.tls\.mode/,
    );
    assert.throws(bad('    cert: x\n'), /unknown key cluster\.tls\.cert/);
  });
  test('booleans are accepted; off is the default and warns when nodes are on other hosts', () => {
    assert.equal(
      parseConfig(yaml(false).replace('    mode: off', '    mode: true'), '/x/p.yaml').config.cluster.tls
        .mode,
      'on',
    );
    const plain = renderConfig({ ...INIT_DEFAULTS, replicas: 1 }).replace(/\n {2}tls:\n {4}mode: off/, '');
    const local = parseConfig(plain, '/x/p.yaml');
    assert.equal(local.config.cluster.tls.mode, 'off');
    assert.equal(local.warnings, undefined);
    const remote = parseConfig(plain.replace('host: localhost', 'host: 10.0.0.2'), '/x/p.yaml');
    assert.match(remote.warnings?.join('\n') ?? '', /cluster\.tls\.mode is off but nodes run on other hosts/);
    assert.equal(
      parseConfig(yaml(true).replaceAll('host: localhost', 'host: 10.0.0.2'), '/x/p.yaml').warnings,
      undefined,
    );
    // Several hosts with TLS on need one CA for all of them.
    const two = yaml(true)
      .replace('host: localhost', 'host: 10.0.0.2')
      .replace('host: localhost', 'host: 10.0.0.3');
    assert.match(
      parseConfig(two, '/x/p.yaml').warnings?.join('\n') ?? '',
      /nodes run on several hosts but cluster\.tls\.ca_cert is not set/,
    );
    assert.equal(
      parseConfig(
        two.replace('    mode: on\n', '    mode: on\n    ca_cert: ca.crt\n    ca_key: ca.key\n'),
        '/x/p.yaml',
      ).warnings,
      undefined,
    );
  });
});
