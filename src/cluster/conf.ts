/**
 * What pgscale writes into a node's data directory: `pgscale.conf` (included from the end of
 * postgresql.conf, regenerated at every start so the YAML stays the source of truth),
 * `pg_hba.conf` (scram-sha-256 only, limited to the configured networks) and the standby's
 * `primary_conninfo` in postgresql.auto.conf. The modern replacements of the guide's settings:
 * standby.signal instead of recovery.conf/standby_mode, slots plus wal_keep_size instead of
 * wal_keep_segments, pg_promote() instead of trigger_file, SCRAM instead of md5, a safe archive
 * instead of bare cp.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { NodeRef } from '../config/load.js';
import type { PgBinaries } from './binaries.js';
import { REPLICATION_USER } from './secrets.js';
import type { NodeTlsFiles } from './tls.js';

export const INCLUDE_LINE = "include_if_exists = 'pgscale.conf'\t# managed by pgscale";

export function slotName(node: string): string {
  return `pgscale_${node}`;
}

/** `localhost` listens on both loopback families; other hosts listen on exactly that address. */
export function listenAddresses(host: string): string {
  return host;
}

function q(v: string | number | boolean): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

export function synchronousStandbyNames(config: Config, standbys: readonly string[]): string {
  const mode = config.replication.synchronous;
  if (mode === 'off' || standbys.length === 0) return '';
  const n = mode === 'on' ? 1 : Number(mode.slice('quorum '.length));
  return `ANY ${n} (${standbys.map((s) => `"${s}"`).join(', ')})`;
}

export interface NodeConfInput {
  config: Config;
  node: NodeRef;
  bins: PgBinaries;
  archiveDir: string;
  archiveScript: string;
  /** Names of the other nodes of the group (standbys when this node is the primary). */
  peers: readonly string[];
  /** The node's certificate, key and CA when cluster.tls is on (tls.ts). */
  tls: NodeTlsFiles | null;
  /** archive_command and restore_command through pgBackRest (backup.enabled; pgbackrest.ts). */
  pgbackrest?: { archiveCommand: string; restoreCommand: string } | null;
}

export function renderNodeConf(i: NodeConfInput): string {
  const { config, node, bins } = i;
  const settings: [string, string | number | boolean][] = [
    ['listen_addresses', listenAddresses(node.host)],
    ['port', node.port],
    ['cluster_name', node.name],
    // TCP only: no socket directory to share or outgrow (sun_path is ~107 bytes).
    ['unix_socket_directories', ''],
    ['password_encryption', 'scram-sha-256'],
    // logical: moving a shard between groups streams it with a publication and a subscription
    // (the physical standbys need no more than replica, and lose nothing with it).
    ['wal_level', 'logical'],
    // The physical standbys' senders and slots, plus a few subscriptions of shard moves (each
    // takes a slot and a sender on the source, more while its tables are first copied).
    ['max_wal_senders', 32],
    ['max_replication_slots', 32],
    // A subscription's apply worker and its table-sync workers are background workers.
    ['max_worker_processes', 16],
    ['max_logical_replication_workers', 8],
    ['max_sync_workers_per_subscription', 2],
    // The launcher starts a new subscription's workers, and a standby retries its source, at this
    // pace (default 5 s): a shard move's copy would wait seconds before it begins.
    ['wal_retrieve_retry_interval', '200ms'],
    ['wal_keep_size', config.replication.wal_keep_size],
    ['max_slot_wal_keep_size', config.replication.max_slot_wal_keep_size],
    ['hot_standby', true],
    ['hot_standby_feedback', true],
    ['wal_log_hints', true],
    ['synchronous_standby_names', synchronousStandbyNames(config, i.peers)],
    ['logging_collector', false],
    ['log_line_prefix', '%m [%p] %q%u@%d '],
    ['log_connections', false],
    // Two-phase commit across groups (distributing a table, DDL on distributed tables). Every node
    // gets the same value: a standby refuses to start with less than its primary's.
    ['max_prepared_transactions', config.postgres.max_prepared_transactions],
  ];
  if (i.tls) {
    settings.push(
      ['ssl', true],
      ['ssl_cert_file', i.tls.cert],
      ['ssl_key_file', i.tls.key],
      ['ssl_ca_file', i.tls.caCert],
      ['ssl_min_protocol_version', 'TLSv1.2'],
    );
  }
  if (i.pgbackrest) {
    // pgBackRest replaces the local archive: checksummed, into the backup repository.
    settings.push(['archive_mode', 'on'], ['archive_command', i.pgbackrest.archiveCommand]);
  } else if (config.replication.archive) {
    settings.push(['archive_mode', 'on']);
    if (bins.major >= 15 && hasBasicArchive(bins.dir)) {
      // basic_archive: writes a temporary file, fsyncs, renames; refuses to overwrite a
      // different file (https://www.postgresql.org/docs/15/basic-archive.html).
      settings.push(['archive_library', 'basic_archive']);
      settings.push(['basic_archive.archive_directory', i.archiveDir]);
    } else {
      settings.push(['archive_command', `${shellQuote(i.archiveScript)} %p %f ${shellQuote(i.archiveDir)}`]);
    }
  } else {
    settings.push(['archive_mode', 'off']);
  }
  // Lets a standby that fell behind its slot's retention catch up from the archive.
  settings.push([
    'restore_command',
    i.pgbackrest?.restoreCommand ??
      `test -f ${shellQuote(i.archiveDir)}/%f && cp ${shellQuote(i.archiveDir)}/%f %p`,
  ]);
  for (const [k, v] of Object.entries(config.postgres.parameters)) settings.push([k, v]);
  return (
    '# Managed by pgscale: regenerated from pgscale.yaml at every start. Do not edit;\n' +
    '# put extra settings under postgres.parameters in pgscale.yaml.\n' +
    settings.map(([k, v]) => `${k} = ${q(v)}`).join('\n') +
    '\n'
  );
}

/** basic_archive ships with PostgreSQL 15+ in pkglibdir: lib/ (Debian) or lib/postgresql/ (others). */
function hasBasicArchive(binDir: string): boolean {
  return ['lib', join('lib', 'postgresql')].some((d) =>
    existsSync(join(binDir, '..', d, 'basic_archive.so')),
  );
}

/** Whether an address range lies inside the loopback ranges (127.0.0.0/8, ::1/128). */
export function isLoopbackCidr(cidr: string): boolean {
  const [addr = '', bits = ''] = cidr.split('/');
  if (addr.includes(':')) return /^(0*:)*:?0*1$/.test(addr.replace(/^::/, ':')) && Number(bits) === 128;
  return addr.split('.')[0] === '127' && Number(bits) >= 8;
}

/**
 * pg_hba.conf. With cluster.tls on, connections from beyond this host must use TLS (hostssl);
 * the loopback ranges keep `host` (TLS or not), as pgscale's own control connections on one host
 * and local administration always worked, and so does the node's own address (`ownHost`, when an
 * IP address) — unless cluster.tls.hostssl_only, which makes every line hostssl (pgscale's own
 * connections use verified TLS whenever cluster.tls is on). Replication takes TLS with a client
 * certificate from the cluster CA from every address.
 */
export function renderHba(config: Config, ownHost?: string): string {
  const tls = config.cluster.tls.mode === 'on';
  // cluster.tls.hostssl_only: no line accepts a connection without TLS, loopback included.
  const sslOnly = tls && config.cluster.tls.hostssl_only;
  const type = (net: string) => (tls && (sslOnly || !isLoopbackCidr(net)) ? 'hostssl' : 'host').padEnd(7);
  const lines = ['# Managed by pgscale. SCRAM only; limited to the networks named in pgscale.yaml.'];
  lines.push('# TYPE  DATABASE      USER          ADDRESS                 METHOD');
  for (const net of config.replication.networks) {
    // Replication also needs a client certificate from the cluster CA (each node presents its
    // own), from every address: only pgscale's standbys and clones replicate.
    lines.push(
      tls
        ? `hostssl replication   ${REPLICATION_USER.padEnd(13)} ${net.padEnd(23)} scram-sha-256 clientcert=verify-ca`
        : `host    replication   ${REPLICATION_USER.padEnd(13)} ${net.padEnd(23)} scram-sha-256`,
    );
  }
  // The node's own address is this host too: its agent's health probes and control connections
  // never cross the network (a remote peer cannot complete a handshake from that address).
  const own = tls && ownHost && isIP(ownHost) ? `${ownHost}/${isIP(ownHost) === 4 ? 32 : 128}` : null;
  if (own && !isLoopbackCidr(own))
    lines.push(
      `${(sslOnly ? 'hostssl' : 'host').padEnd(7)} all           all           ${own.padEnd(23)} scram-sha-256`,
    );
  for (const net of config.postgres.client_networks) {
    lines.push(`${type(net)} all           all           ${net.padEnd(23)} scram-sha-256`);
  }
  return lines.join('\n') + '\n';
}

export function writeNodeFiles(pgdata: string, conf: string, hba: string): void {
  writeFileSync(join(pgdata, 'pgscale.conf'), conf, { mode: 0o600 });
  writeFileSync(join(pgdata, 'pg_hba.conf'), hba, { mode: 0o600 });
  const main = join(pgdata, 'postgresql.conf');
  const text = readFileSync(main, 'utf8');
  if (!text.includes(INCLUDE_LINE)) writeFileSync(main, text.replace(/\n?$/, '\n') + INCLUDE_LINE + '\n');
}

/** A libpq `key=value` pair, the value quoted (backslash and quote escaped) when it needs to be. */
function kv(k: string, v: string | number): string {
  return `${k}=${/^[\w./-]+$/.test(String(v)) ? v : `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`}`;
}

/** A node's own certificate and key, presented as a client certificate (replication). */
export interface ClientPair {
  readonly cert: string;
  readonly key: string;
}

/**
 * libpq's TLS settings toward a node: with the cluster CA (`rootCert`, cluster.tls on) the
 * server must present a certificate from it naming the host connected to (verify-full), and
 * `client`, when given, is this side's certificate (required for replication); without, TLS
 * when the server offers it. Naming the client pair also keeps libpq from reading
 * ~/.postgresql/postgresql.crt.
 */
export function sslParams(rootCert: string | null, client?: ClientPair): string[] {
  if (!rootCert) return [kv('sslmode', 'prefer')];
  const pair = client ? [kv('sslcert', client.cert), kv('sslkey', client.key)] : [];
  return [kv('sslmode', 'verify-full'), kv('sslrootcert', rootCert), ...pair];
}

/** The same as environment variables, for tools that take no connection string (pg_basebackup). */
export function sslEnv(rootCert: string | null, client?: ClientPair): Record<string, string> {
  if (!rootCert) return { PGSSLMODE: 'prefer' };
  const env: Record<string, string> = { PGSSLMODE: 'verify-full', PGSSLROOTCERT: rootCert };
  if (client) Object.assign(env, { PGSSLCERT: client.cert, PGSSLKEY: client.key });
  return env;
}

/**
 * How a subscription on one group reaches another group's `primary` (a shard move): as the
 * superuser `user`, the password from the passfile, never inline; over verified TLS when the
 * cluster CA `rootCert` is given.
 */
export function subscriptionConninfo(
  primary: { readonly host: string; readonly port: number },
  database: string,
  user: string,
  /**
   * null: the server's own files (PGPASSFILE and, with `rootCert`, PGSSLROOTCERT in its
   * environment, set by pgscale when it starts a node): several hosts, where the mover's paths
   * mean nothing on the server's host.
   */
  passfile: string | null,
  rootCert: string | null = null,
): string {
  return [
    kv('host', primary.host),
    kv('port', primary.port),
    kv('dbname', database),
    kv('user', user),
    ...(passfile === null ? [] : [kv('passfile', passfile)]),
    kv('application_name', 'pgscale_move'),
    ...(rootCert && passfile === null ? [kv('sslmode', 'verify-full')] : rootCert ? sslParams(rootCert) : []),
  ].join(' ');
}

/**
 * primary_conninfo for a standby: the password comes from the passfile, never inline; over
 * verified TLS when the cluster CA `rootCert` is given, presenting the standby's `client` pair.
 */
export function primaryConninfo(
  primary: { host: string; port: number },
  self: string,
  passfile: string,
  rootCert: string | null = null,
  client?: ClientPair,
): string {
  return [
    kv('host', primary.host),
    kv('port', primary.port),
    kv('user', REPLICATION_USER),
    kv('passfile', passfile),
    kv('application_name', self),
    ...sslParams(rootCert, client),
    kv('connect_timeout', 5),
    kv('keepalives_idle', 10),
  ].join(' ');
}

/**
 * Sets the standby settings in postgresql.auto.conf (removing any earlier ones, including those
 * pg_basebackup -R wrote) and writes standby.signal.
 */
export function writeStandbySettings(pgdata: string, conninfo: string, slot: string): void {
  const auto = join(pgdata, 'postgresql.auto.conf');
  const old = existsSync(auto) ? readFileSync(auto, 'utf8') : '';
  const kept = old.split('\n').filter((l) => l && !/^\s*(primary_conninfo|primary_slot_name)\s*=/.test(l));
  kept.push(`primary_conninfo = ${q(conninfo)}`, `primary_slot_name = ${q(slot)}`);
  writeFileSync(auto, kept.join('\n') + '\n', { mode: 0o600 });
  writeFileSync(join(pgdata, 'standby.signal'), '', { mode: 0o600 });
}

export function shellQuote(s: string): string {
  return /^[\w./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

/**
 * The archive command used where basic_archive is not available (PostgreSQL 13–14): same
 * guarantees. An existing file with the same content is success (a retry after a crash between
 * the copy and PostgreSQL's bookkeeping); a different one is a failure reported in
 * pg_stat_archiver, never overwritten.
 */
export const ARCHIVE_SCRIPT = `#!/bin/sh
# pgscale safe WAL archive: pgscale-archive SRC NAME DIR
set -eu
src=$1; name=$2; dir=$3
dst="$dir/$name"
if [ -e "$dst" ]; then
  if cmp -s "$src" "$dst"; then exit 0; fi
  echo "pgscale-archive: $dst exists with different content; refusing to overwrite" >&2
  exit 1
fi
tmp="$dir/.$name.tmp.$$"
trap 'rm -f "$tmp"' EXIT
cp "$src" "$tmp"
sync "$tmp"
mv "$tmp" "$dst"
trap - EXIT
sync "$dir"
`;
