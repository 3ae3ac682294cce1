import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../config/load.js';
import { INIT_DEFAULTS, renderConfig } from '../config/template.js';
import { ClusterTls, proxyCertHosts, proxyWithClusterCert } from './tls.js';

const dir = mkdtempSync(join(tmpdir(), 'pgscale-tls-proxy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A cluster file whose proxy section gets `tls` (YAML lines under `proxy:`). */
const withProxyTls = (tls: string, clusterTls = true) =>
  renderConfig({ ...INIT_DEFAULTS, replicas: 0, tls: clusterTls }).replace(
    'proxy:\n  listen: 127.0.0.1\n',
    `proxy:\n  listen: 127.0.0.1\n  tls:\n${tls}`,
  );

test('proxy.tls.cluster_ca: a certificate from the cluster CA naming the listen address, this host and cert_names', () => {
  const file = join(dir, 'pgscale.yaml');
  const text = withProxyTls(
    '    mode: require\n    cluster_ca: true\n    cert_names: [db.example.com, 10.2.3.4]\n',
  );
  writeFileSync(file, text);
  const loaded = parseConfig(text, file);
  const tls = new ClusterTls(loaded);
  const proxy = proxyWithClusterCert(loaded.config.proxy, tls);
  assert.equal(proxy.tls.cert_file, join(tls.dir, 'pgscale-proxy.crt'));
  assert.equal(proxy.tls.key_file, join(tls.dir, 'pgscale-proxy.key'));
  const cert = new X509Certificate(readFileSync(proxy.tls.cert_file));
  const ca = new X509Certificate(readFileSync(tls.rootCert));
  assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey));
  for (const h of proxyCertHosts(loaded.config.proxy)) assert.ok(cert.checkHost(h) ?? cert.checkIP(h), h);
  assert.ok(cert.checkIP('10.2.3.4') && cert.checkHost('db.example.com') && cert.checkIP('127.0.0.1'));
  assert.equal(cert.checkHost('elsewhere.example.com'), undefined);
  // Issued once: the next call keeps it; force (rotation) issues another.
  const serial = cert.serialNumber;
  tls.proxyFiles();
  assert.equal(new X509Certificate(readFileSync(proxy.tls.cert_file)).serialNumber, serial);
  tls.proxyFiles({ force: true });
  assert.notEqual(new X509Certificate(readFileSync(proxy.tls.cert_file)).serialNumber, serial);
  // Without cluster_ca, or with TLS disabled, the section is left as it is.
  const plain = parseConfig(withProxyTls('    mode: disable\n'), file).config.proxy;
  assert.equal(proxyWithClusterCert(plain, tls), plain);
});

test('a wildcard listen address is not a name of the certificate', () => {
  const p = parseConfig(
    withProxyTls('    mode: allow\n    cluster_ca: true\n').replace('listen: 127.0.0.1', 'listen: 0.0.0.0'),
    '/x/p.yaml',
  ).config.proxy;
  assert.deepEqual(proxyCertHosts(p, 'Db1'), ['db1']);
});

test('proxy.tls.cluster_ca: conflicting or incomplete settings are refused, naming the key', () => {
  const bad: [string, RegExp][] = [
    [
      '    mode: require\n    cluster_ca: true\n    cert_file: a.pem\n    key_file: a.key\n',
      /cluster_ca .* and cert_file\/key_file .* exclude each other/,
    ],
    ['    cluster_ca: true\n', /proxy\.tls\.cluster_ca: set proxy\.tls\.mode to allow or require/],
    [
      '    mode: require\n    cert_file: a.pem\n    key_file: a.key\n    cert_names: [x]\n',
      /proxy\.tls\.cert_names: only with proxy\.tls\.cluster_ca: true/,
    ],
  ];
  for (const [tls, message] of bad) assert.throws(() => parseConfig(withProxyTls(tls), '/x/p.yaml'), message);
});
