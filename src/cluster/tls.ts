/**
 * The cluster's TLS between its own parts (cluster.tls): a cluster CA, created by pgscale in
 * `<data_dir>/ca/` (key 0600 in a 0700 directory owned by whoever runs pgscale, never by the
 * PostgreSQL service user) unless the user names their own, and per node a server certificate
 * whose subjectAltName holds the node's host and the loopback names, kept with the CA's
 * certificate in `<data_dir>/tls/` (0700, owned by the service user: PostgreSQL and its tools
 * read them). Certificates are issued with the openssl CLI (Node's crypto makes keys and reads
 * certificates but cannot issue them): private keys are made by Node and written 0600 before
 * openssl sees them, and openssl gets only file names, so no key reaches a command line.
 * A certificate is issued again when its node's configuration is next written (a start, and
 * the reloads of add-replica, a switchover…) if it is missing, no longer names its node's host,
 * was issued by another CA, or expires within RENEW_DAYS (half its validity when shorter).
 */
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { LoadedConfig, NodeRef } from '../config/load.js';
import type { ProxyConfig } from '../config/schema.js';
import { ClusterError, ErrorCodes } from '../errors.js';
import { chownToService, ensureOwnedDir } from './run-as.js';
import { writePrivate } from './secrets.js';

/** A node certificate expiring sooner than this is issued again (and `pgscale doctor` warns). */
export const RENEW_DAYS = 30;
/** Validity of a CA pgscale creates. */
export const CA_DAYS = 3650;
const DAY_MS = 86_400_000;
/** extendedKeyUsage id-kp-clientAuth (RFC 5280). */
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** The files a node's PostgreSQL serves TLS with (ssl_cert_file, ssl_key_file, ssl_ca_file). */
export interface NodeTlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly caCert: string;
}

/**
 * subjectAltName entries for a node on `host`: the host as an IP address or a DNS name, and the
 * loopback names (the node's own host connects to it as localhost). An IP host is also listed as
 * a DNS name: libpq before PostgreSQL 14 compares the host only with dNSName entries.
 */
export function subjectAltNames(host: string): string[] {
  const own = isIP(host) ? [`IP:${host}`, `DNS:${host}`] : [`DNS:${host.toLowerCase()}`];
  return [...new Set([...own, 'DNS:localhost', 'IP:127.0.0.1', 'IP:::1'])];
}

/** Base name of the proxy's certificate and key in <data_dir>/tls (proxy.tls.cluster_ca). */
export const PROXY_CERT_NAME = 'pgscale-proxy';

/**
 * The names a proxy certificate from the cluster CA holds: proxy.listen unless it is a wildcard,
 * this host's name, proxy.tls.cert_names, and (through subjectAltNames) the loopback names.
 */
export function proxyCertHosts(proxy: ProxyConfig, host = hostname()): string[] {
  const listen = ['', '*', '0.0.0.0', '::'].includes(proxy.listen) ? [] : [proxy.listen];
  return [...new Set([...listen, host, ...proxy.tls.cert_names].map((h) => h.toLowerCase()))];
}

/** Whether a certificate is valid for `host` (an IP address against IP entries, a name against DNS). */
export function certCovers(cert: X509Certificate, host: string): boolean {
  return isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
}

/** Days until a certificate expires (negative once expired). */
export function daysLeft(cert: X509Certificate, now = Date.now()): number {
  return (Date.parse(cert.validTo) - now) / DAY_MS;
}

/**
 * The proxy section the proxy inside `pgscale up` runs with: with the cluster CA (`rootCert`,
 * cluster.tls on) its server connections verify the nodes by it (verify-full), unless
 * proxy.server_tls says otherwise: a mode other than disable is kept (with the cluster CA when
 * it names no ca_file), and so is a ca_file of the user's.
 */
export function proxyWithClusterTls(proxy: ProxyConfig, rootCert: string | null): ProxyConfig {
  if (!rootCert) return proxy;
  const st = proxy.server_tls;
  if (st.ca_file !== null) return proxy;
  const mode = st.mode === 'disable' ? 'verify-full' : st.mode;
  return { ...proxy, server_tls: { mode, ca_file: rootCert } };
}

/**
 * The proxy section with its client-facing certificate from the cluster CA when
 * proxy.tls.cluster_ca asks for one (issued or renewed here, ClusterTls.proxyFiles).
 */
export function proxyWithClusterCert(proxy: ProxyConfig, tls: ClusterTls): ProxyConfig {
  if (!proxy.tls.cluster_ca || proxy.tls.mode === 'disable') return proxy;
  const f = tls.proxyFiles();
  return { ...proxy, tls: { ...proxy.tls, cert_file: f.cert, key_file: f.key } };
}

export interface CertExpiry {
  readonly what: string;
  readonly file: string;
  readonly validTo: string;
  readonly daysLeft: number;
}

export class ClusterTls {
  constructor(private readonly loaded: LoadedConfig) {}

  get enabled(): boolean {
    return this.loaded.config.cluster.tls.mode === 'on';
  }

  private get settings() {
    return this.loaded.config.cluster.tls;
  }

  private userPath(p: string): string {
    return resolve(dirname(this.loaded.file), p);
  }

  /** Directory of the files PostgreSQL reads: the CA's certificate and each node's pair. */
  get dir(): string {
    return join(this.loaded.dataDir, 'tls');
  }

  /** The certificate that verifies every node (libpq sslrootcert, the proxy's server_tls.ca_file). */
  get rootCert(): string {
    return join(this.dir, 'ca.crt');
  }

  /**
   * The CA certificate the proxy verifies the nodes with: the user's ca_cert where one is named
   * (the same path on every host, so a proxy on a host without nodes finds it), else the copy in
   * <data_dir>/tls.
   */
  get trustFile(): string {
    const s = this.settings;
    return s.ca_cert ? this.userPath(s.ca_cert) : this.rootCert;
  }

  /** The CA pgscale issues with: the user's (ca_cert + ca_key), its own, or none (node_cert_dir). */
  private issuer(): { cert: string; key: string } | null {
    const s = this.settings;
    if (s.ca_cert && s.ca_key) return { cert: this.userPath(s.ca_cert), key: this.userPath(s.ca_key) };
    if (s.node_cert_dir) return null;
    const dir = join(this.loaded.dataDir, 'ca');
    return { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  }

  /** Where the CA's certificate comes from. */
  private caSource(): string {
    const s = this.settings;
    return s.ca_cert ? this.userPath(s.ca_cert) : this.issuer()!.cert;
  }

  /**
   * Creates pgscale's own CA when it has none yet (only when the user named no CA), and puts the
   * CA's certificate where PostgreSQL and libpq read it. Idempotent.
   */
  ensureCa(): void {
    const s = this.settings;
    if (!s.ca_cert) {
      const { cert, key } = this.issuer()!;
      // The CA stays ours (created by us, not given to the service user): PostgreSQL never
      // needs its key.
      // The data directory itself as the cluster makes it (the service user enters it); the CA's
      // own directory 0700 (recursive mkdir would give every new parent the same mode).
      mkdirSync(this.loaded.dataDir, { recursive: true });
      mkdirSync(dirname(key), { recursive: true, mode: 0o700 });
      chmodSync(dirname(key), 0o700);
      const [hasCert, hasKey] = [existsSync(cert), existsSync(key)];
      // Half a CA is never completed with a new half: that would be a second CA, whose
      // certificates the other hosts (holding the first) refuse.
      if (hasCert !== hasKey)
        throw new Error(
          `${hasCert ? cert : key} is there without ${hasCert ? key : cert}: pgscale will not make a second CA beside ` +
            `it. Copy both files of ${dirname(key)} from the host that created the CA (once ${cert} exists there), ` +
            'or remove the one that is here to create a new CA',
        );
      if (!hasCert) this.createCa(cert, key);
    }
    const src = this.caSource();
    const pem = readPem(src, 'cluster.tls.ca_cert');
    ensureOwnedDir(this.dir, 0o700);
    if (!existsSync(this.rootCert) || readFileSync(this.rootCert, 'utf8') !== pem) {
      const tmp = `${this.rootCert}.tmp-${process.pid}`;
      writeFileSync(tmp, pem, { mode: 0o644 });
      chownToService(tmp);
      renameSync(tmp, this.rootCert);
    }
  }

  /** Writes both files under temporary names first: a copy taken meanwhile finds neither. */
  private createCa(cert: string, key: string): void {
    const tmpKey = `${key}.new-${process.pid}`;
    const tmpCert = `${cert}.new-${process.pid}`;
    writePrivate(tmpKey, newKeyPem(), false);
    const name = this.loaded.config.cluster.id ?? this.loaded.config.cluster.name;
    withOpensslConfig(dirname(key), `pgscale ${name} CA`, [], (cnf) =>
      openssl([
        'req',
        '-new',
        '-x509',
        '-config',
        cnf,
        '-extensions',
        'ca_ext',
        '-key',
        tmpKey,
        '-sha256',
        '-days',
        String(CA_DAYS),
        '-set_serial',
        serial(),
        '-out',
        tmpCert,
      ]),
    );
    renameSync(tmpKey, key);
    renameSync(tmpCert, cert);
  }

  /**
   * The node's TLS files, issued (or renewed, or copied from node_cert_dir) when needed. A renewal
   * that fails while the current certificate still serves its node keeps it and tells `warn`
   * (this runs on the way of a failover too: a renewal problem must not stop one).
   */
  nodeFiles(
    n: NodeRef,
    warn: (message: string) => void = () => undefined,
    opts: { force?: boolean } = {},
  ): NodeTlsFiles {
    this.ensureCa();
    const files = {
      cert: join(this.dir, `${n.name}.crt`),
      key: join(this.dir, `${n.name}.key`),
      caCert: this.rootCert,
    };
    const ca = new X509Certificate(readFileSync(this.rootCert));
    const issuer = this.issuer();
    if (!issuer) {
      this.copyReady(n, files, ca);
      return files;
    }
    if (!opts.force && this.usable(files.cert, [n.host], ca)) return files;
    try {
      this.issue(n.name, subjectAltNames(n.host), files, issuer);
    } catch (e) {
      if (!this.usable(files.cert, [n.host], ca, 0)) throw e;
      warn(`keeping the certificate of ${n.name} until it can be renewed: ${(e as Error).message}`);
    }
    return files;
  }

  /**
   * The proxy's client-facing certificate and key from the cluster CA (proxy.tls.cluster_ca),
   * issued when missing, no longer naming proxyCertHosts(), from another CA, expiring — or
   * always with `force` (rotation).
   */
  proxyFiles(opts: { force?: boolean } = {}): { cert: string; key: string } {
    this.ensureCa();
    const issuer = this.issuer();
    if (!issuer) {
      throw new ClusterError(
        ErrorCodes.CONFIG_INVALID,
        'proxy.tls.cluster_ca: pgscale has no CA key to issue with (cluster.tls.node_cert_dir); give the proxy cert_file and key_file',
      );
    }
    const files = {
      cert: join(this.dir, `${PROXY_CERT_NAME}.crt`),
      key: join(this.dir, `${PROXY_CERT_NAME}.key`),
    };
    const hosts = proxyCertHosts(this.loaded.config.proxy);
    const ca = new X509Certificate(readFileSync(this.rootCert));
    if (!opts.force && this.usable(files.cert, hosts, ca)) return files;
    const sans = [...new Set(hosts.flatMap((h) => subjectAltNames(h)))];
    this.issue(PROXY_CERT_NAME, sans, files, issuer);
    return files;
  }

  /** Whether an existing certificate still serves: names the hosts, from this CA, not expiring. */
  private usable(certFile: string, hosts: readonly string[], ca: X509Certificate, minDays?: number): boolean {
    if (!existsSync(certFile)) return false;
    try {
      const c = new X509Certificate(readFileSync(certFile));
      // Short-lived certificates (node_cert_days under 2 × RENEW_DAYS) are renewed at half-life,
      // not at every start.
      const renewAt = minDays ?? Math.min(RENEW_DAYS, this.settings.node_cert_days / 2);
      return (
        hosts.every((h) => certCovers(c, h)) &&
        c.checkIssued(ca) &&
        c.verify(ca.publicKey) &&
        daysLeft(c) > renewAt
      );
    } catch {
      return false;
    }
  }

  private issue(
    cn: string,
    sans: readonly string[],
    files: { cert: string; key: string },
    issuer: { cert: string; key: string },
  ): void {
    privateToOwner(issuer.key, 'cluster.tls.ca_key');
    const tmpKey = `${files.key}.new`;
    const tmpCert = `${files.cert}.new`;
    writePrivate(tmpKey, newKeyPem(), true);
    try {
      withOpensslConfig(this.dir, cn, sans, (cnf) => {
        const csr = join(this.dir, `${cn}.csr`);
        try {
          openssl(['req', '-new', '-config', cnf, '-key', tmpKey, '-out', csr]);
          openssl([
            'x509',
            '-req',
            '-in',
            csr,
            '-CA',
            issuer.cert,
            '-CAkey',
            issuer.key,
            '-set_serial',
            serial(),
            '-days',
            String(this.settings.node_cert_days),
            '-sha256',
            '-extfile',
            cnf,
            '-extensions',
            'node_ext',
            '-out',
            tmpCert,
          ]);
        } finally {
          rmSync(csr, { force: true });
        }
      });
      chownToService(tmpCert);
      // The key first: a certificate is never left beside a key that is not its own for longer
      // than a rename (PostgreSQL reads both only at start and reload).
      renameSync(tmpKey, files.key);
      renameSync(tmpCert, files.cert);
    } finally {
      rmSync(tmpKey, { force: true });
      rmSync(tmpCert, { force: true });
    }
  }

  /** node_cert_dir: the user's pair for this node, checked, copied with the modes PostgreSQL needs. */
  private copyReady(n: NodeRef, files: NodeTlsFiles, ca: X509Certificate): void {
    const dir = this.userPath(this.settings.node_cert_dir!);
    const srcCert = join(dir, `${n.name}.crt`);
    const srcKey = join(dir, `${n.name}.key`);
    const where = `cluster.tls.node_cert_dir (${dir})`;
    const cert = new X509Certificate(readPem(srcCert, where));
    privateToOwner(srcKey, where);
    const key = readPem(srcKey, where);
    const problems: string[] = [];
    if (!certCovers(cert, n.host)) problems.push(`does not name the node's host ${n.host}`);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey))
      problems.push('was not issued by cluster.tls.ca_cert');
    if (daysLeft(cert) <= 0) problems.push(`expired on ${cert.validTo}`);
    const eku = cert.keyUsage as string[] | undefined;
    if (eku && eku.length > 0 && !eku.includes(CLIENT_AUTH)) {
      problems.push(
        'lacks the clientAuth extended key usage (a standby presents it as its client certificate)',
      );
    }
    let keyMatches = false;
    try {
      keyMatches = cert.checkPrivateKey(createPrivateKey(key));
    } catch {
      keyMatches = false;
    }
    if (!keyMatches) problems.push(`is not the certificate of ${srcKey}`);
    if (problems.length > 0) {
      throw new ClusterError(ErrorCodes.CONFIG_INVALID, `${srcCert} ${problems.join('; ')}`);
    }
    writePrivate(files.key, key, true);
    copyFileSync(srcCert, files.cert);
    chownToService(files.cert);
  }

  /** The CA's and each provisioned node's certificate with its expiry (for `pgscale doctor`). */
  expiries(nodes: readonly NodeRef[], now = Date.now()): CertExpiry[] {
    const out: CertExpiry[] = [];
    const add = (what: string, file: string) => {
      if (!existsSync(file)) return;
      const c = new X509Certificate(readFileSync(file));
      out.push({ what, file, validTo: c.validTo, daysLeft: Math.floor(daysLeft(c, now)) });
    };
    add('cluster CA', this.rootCert);
    for (const n of nodes) add(n.name, join(this.dir, `${n.name}.crt`));
    if (this.loaded.config.proxy.tls.cluster_ca) add('proxy', join(this.dir, `${PROXY_CERT_NAME}.crt`));
    return out;
  }
}

function newKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
}

function serial(): string {
  // Positive, 127 bits: unique without a serial file.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return `0x${b.toString('hex')}`;
}

/** A private key others can read is refused, as PostgreSQL refuses its own server key then. */
function privateToOwner(file: string, setting: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    return; // reading it reports what is wrong
  }
  if ((mode & 0o077) !== 0) {
    throw new ClusterError(
      ErrorCodes.CONFIG_INVALID,
      `${setting}: ${file} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); a private key must be 0600: chmod 600 ${file}`,
    );
  }
}

function readPem(file: string, setting: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ClusterError(
      ErrorCodes.CONFIG_INVALID,
      `${setting}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    );
  }
}

/** An openssl configuration (subject, the CA's and a node's extensions) in a temporary file. */
function withOpensslConfig<T>(dir: string, cn: string, sans: readonly string[], fn: (file: string) => T): T {
  const file = join(dir, `.openssl-${process.pid}-${randomBytes(4).toString('hex')}.cnf`);
  const text = [
    '[req]',
    'distinguished_name = dn',
    'prompt = no',
    '[dn]',
    `CN = ${cn.replace(/[^\w .-]/g, '_')}`,
    '[ca_ext]',
    'basicConstraints = critical,CA:TRUE,pathlen:0',
    'keyUsage = critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier = hash',
    '[node_ext]',
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage = serverAuth,clientAuth',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    ...(sans.length > 0 ? [`subjectAltName = ${sans.join(',')}`] : []),
    '',
  ].join('\n');
  writeFileSync(file, text, { mode: 0o600 });
  try {
    return fn(file);
  } finally {
    rmSync(file, { force: true });
  }
}

function openssl(args: string[]): void {
  const bin = process.env.PGSCALE_OPENSSL ?? 'openssl';
  try {
    execFileSync(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    const detail =
      err.code === 'ENOENT'
        ? 'not found: install openssl (apt-get install openssl), or set cluster.tls.node_cert_dir to ready certificates'
        : (err.stderr?.toString().trim().split('\n').slice(-3).join(' | ') ?? err.message);
    throw new ClusterError(ErrorCodes.BINARY_FAILED, `openssl ${args[0]} (cluster TLS): ${detail}`, {
      cause: e,
    });
  }
}
