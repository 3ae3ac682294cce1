/**
 * Certificate rotation without an outage: the node certificates (and the proxy's, with
 * proxy.tls.cluster_ca) that expire within N days — or all of them — are issued again by the
 * cluster CA (or copied again from node_cert_dir), written beside the old ones and renamed over
 * them, and each running node is told to load them with pg_reload_conf(): PostgreSQL 10 and later
 * reread ssl_cert_file and ssl_key_file on SIGHUP for new connections, while open TLS sessions
 * keep the keys they negotiated (https://www.postgresql.org/docs/current/ssl-tcp.html, 18.9.1).
 * A reload that fails to load the new files keeps the old context, so rotation is checked by
 * what a new handshake is served. The proxy is reloaded through `reloadProxy` (the CLI sends the
 * controller SIGHUP): its new TLS context serves new handshakes only, so no client is dropped.
 * `pgscale rotate-certs` and `pgscale reload` call rotateCertificates().
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { NodeRef } from '../config/load.js';
import { ConfigError, ErrorCodes, errorMessage } from '../errors.js';
import type { Cluster } from './cluster.js';
import { runningPid } from './instance.js';
import { withClient } from './sql.js';
import { RENEW_DAYS, daysLeft } from './tls.js';

export interface RotateOptions {
  /** Issue every certificate again, not only those expiring within `withinDays`. */
  readonly all?: boolean;
  /** Renew what expires within this many days (default RENEW_DAYS, 30). */
  readonly withinDays?: number;
  /**
   * Makes the running proxy load its new certificate (the controller's SIGHUP); resolves whether
   * a proxy was there to reload. Without it the proxy's certificate is renewed on disk only.
   */
  readonly reloadProxy?: () => Promise<boolean> | boolean;
  /** Progress lines for people. */
  readonly log?: (line: string) => void;
}

export interface RotatedCertificate {
  /** The node's name, or `proxy`. */
  readonly what: string;
  readonly file: string;
  readonly renewed: boolean;
  /** Serial number (hex) and expiry before and after. */
  readonly before: { serial: string; validTo: string } | null;
  readonly after: { serial: string; validTo: string };
  /**
   * served: a new handshake gets the new certificate; not-running: the node or proxy is not
   * running here (it loads the files at its start); unchanged: nothing was renewed; failed: the
   * reload did not take (see `error`).
   */
  readonly loaded: 'served' | 'not-running' | 'unchanged' | 'failed';
  readonly error?: string;
}

/** How long a reloaded server has to serve the new certificate to new handshakes. */
const SERVE_WAIT_MS = 10_000;

/**
 * Renews the certificates of this host's nodes (those whose data directory is here) and the
 * proxy's, and makes whoever serves them load the new ones. Throws when cluster.tls is off and
 * no proxy certificate comes from the cluster CA: there is nothing to rotate.
 */
export async function rotateCertificates(
  cluster: Cluster,
  opts: RotateOptions = {},
): Promise<RotatedCertificate[]> {
  const tls = cluster.tls;
  const config = cluster.config;
  const proxyTls = config.proxy.tls.cluster_ca && config.proxy.tls.mode !== 'disable';
  if (!tls.enabled && !proxyTls) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      'nothing to rotate: cluster.tls.mode is off and proxy.tls.cluster_ca is not set (docs/tls.md)',
    );
  }
  const within = opts.withinDays ?? RENEW_DAYS;
  const due = (file: string): boolean => {
    const c = certOf(file);
    return opts.all === true || c === null || daysLeft(c) <= within;
  };
  const log = opts.log ?? (() => undefined);
  const out: RotatedCertificate[] = [];
  if (tls.enabled) {
    for (const n of cluster.nodes()) {
      const { pgdata } = cluster.paths(n.name);
      if (!existsSync(pgdata)) continue; // another host's node: its agent rotates it
      const file = `${tls.dir}/${n.name}.crt`;
      const before = summary(file);
      tls.nodeFiles(n, log, { force: due(file) });
      const after = summary(file)!;
      const renewed = before?.serial !== after.serial;
      if (!renewed) {
        out.push({ what: n.name, file, renewed, before, after, loaded: 'unchanged' });
        continue;
      }
      log(`${n.name}: new certificate ${after.serial}, valid to ${after.validTo}`);
      out.push({
        what: n.name,
        file,
        renewed,
        before,
        after,
        ...(await reloadNode(cluster, n, after.serial)),
      });
    }
  }
  if (proxyTls) {
    const { cert } = tls.proxyFiles();
    const before = summary(cert);
    if (due(cert)) tls.proxyFiles({ force: true });
    const after = summary(cert)!;
    const renewed = before?.serial !== after.serial;
    let loaded: RotatedCertificate['loaded'] = 'unchanged';
    let error: string | undefined;
    if (renewed) {
      log(`proxy: new certificate ${after.serial}, valid to ${after.validTo}`);
      try {
        loaded = 'not-running';
        if (opts.reloadProxy && (await opts.reloadProxy())) {
          const at = { host: proxyHost(config.proxy.listen), port: config.proxy.port };
          loaded = (await servesSerial(at, after.serial)) ? 'served' : 'failed';
          if (loaded === 'failed')
            error = `the proxy on ${at.host}:${at.port} still serves another certificate`;
        }
      } catch (e) {
        loaded = 'failed';
        error = errorMessage(e);
      }
    }
    out.push({ what: 'proxy', file: cert, renewed, before, after, loaded, ...(error ? { error } : {}) });
  }
  return out;
}

/** pg_reload_conf() on a running node, then a new handshake must be served `serial`. */
async function reloadNode(
  cluster: Cluster,
  n: NodeRef,
  serial: string,
): Promise<Pick<RotatedCertificate, 'loaded' | 'error'>> {
  if (runningPid(cluster.paths(n.name).pgdata) === null) return { loaded: 'not-running' };
  try {
    await withClient(cluster.target(n), (c) => c.query('SELECT pg_reload_conf()'));
    if (await servesSerial(n, serial)) return { loaded: 'served' };
    return {
      loaded: 'failed',
      error: `${n.name} still serves another certificate after its reload; see its log`,
    };
  } catch (e) {
    return { loaded: 'failed', error: `${n.name}: ${errorMessage(e)}` };
  }
}

function certOf(file: string): X509Certificate | null {
  try {
    return new X509Certificate(readFileSync(file));
  } catch {
    return null;
  }
}

function summary(file: string): { serial: string; validTo: string } | null {
  const c = certOf(file);
  return c ? { serial: c.serialNumber.toLowerCase(), validTo: c.validTo } : null;
}

/** Where to reach a proxy listening on `listen` from this host. */
function proxyHost(listen: string): string {
  return ['', '*', '0.0.0.0'].includes(listen) ? '127.0.0.1' : listen === '::' ? '::1' : listen;
}

/** Whether new handshakes get the certificate `serial` within SERVE_WAIT_MS (a reload is asynchronous). */
async function servesSerial(at: { host: string; port: number }, serial: string): Promise<boolean> {
  const until = Date.now() + SERVE_WAIT_MS;
  for (;;) {
    const got = await servedSerial(at.host, at.port).catch(() => null);
    if (got === serial || Date.now() > until) return got === serial;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The serial number of the certificate a PostgreSQL-protocol server (a node or the proxy)
 * presents: SSLRequest, then a TLS handshake that verifies nothing and is closed at once, before
 * any startup message (so no login and no password).
 */
export function servedSerial(host: string, port: number, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const raw = netConnect({ host, port });
    const timer = setTimeout(() => {
      raw.destroy();
      reject(new Error(`${host}:${port}: no TLS handshake within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (e: Error) => {
      clearTimeout(timer);
      raw.destroy();
      reject(e);
    };
    raw.once('error', fail);
    raw.once('connect', () => {
      const req = Buffer.alloc(8);
      req.writeInt32BE(8, 0);
      req.writeInt32BE(80877103, 4); // SSLRequest
      raw.write(req);
    });
    raw.once('data', (b: Buffer) => {
      if (b[0] !== 0x53) return fail(new Error(`${host}:${port} does not offer TLS`));
      const s = tlsConnect({ socket: raw, rejectUnauthorized: false });
      s.once('error', fail);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        const serial = s.getPeerCertificate().serialNumber.toLowerCase();
        s.destroy();
        resolve(serial);
      });
    });
  });
}
