/**
 * Loads `pgscale.yaml`: YAML → schema validation → cross-field checks → a frozen config with
 * absolute paths. Every problem is reported with the key path it concerns and what is accepted,
 * so that a user can fix the file without reading our source.
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema } from './schema.js';
import type { Config, NodeConfig } from './schema.js';
import { ConfigError, ErrorCodes } from '../errors.js';
import { userProblems } from './users.js';

export interface LoadedConfig {
  readonly config: Config;
  /** Absolute path of the YAML file. */
  readonly file: string;
  /** Absolute data directory (config.cluster.data_dir resolved against the file's directory). */
  readonly dataDir: string;
  /** What the file does that still works but should change (an old key name); the CLI prints them. */
  readonly warnings?: readonly string[];
}

export interface NodeRef extends NodeConfig {
  readonly group: number;
  /** Position inside its group; 0 is the initial primary. */
  readonly index: number;
  /**
   * Port of the node's health endpoints (the agent): `api_port`, or by default
   * http.port + 1 + the node's position among all nodes of the file (group by group).
   */
  readonly apiPort: number;
}

/**
 * The id under which the cluster's keys live in a state store: cluster.id, or for a file
 * written before cluster.id existed its name (where those versions kept the keys, so an upgrade
 * finds its state; the claim of src/ha/store-claim.ts still refuses a second cluster there).
 */
export function clusterId(config: Config): string {
  return config.cluster.id ?? config.cluster.name;
}

export function defaultConfigPath(): string {
  return resolve(process.env.PGSCALE_CONFIG ?? 'pgscale.yaml');
}

export function loadConfig(file: string = defaultConfigPath()): LoadedConfig {
  const abs = resolve(file);
  if (!existsSync(abs)) {
    throw new ConfigError(
      ErrorCodes.CONFIG_NOT_FOUND,
      `${abs}: no such file. Create one with \`pgscale init\` or pass -c FILE.`,
    );
  }
  return parseConfig(readFileSync(abs, 'utf8'), abs);
}

export function parseConfig(text: string, file: string): LoadedConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `${file}: invalid YAML: ${first.message.split('\n')[0]}`,
    );
  }
  const top: unknown = doc.toJS();
  if (top === null || typeof top !== 'object' || Array.isArray(top)) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `${file}: expected a mapping of settings at the top level`,
    );
  }
  const { raw, warnings } = renameOldKeys(top as Record<string, unknown>, file);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  - ${formatIssue(i)}`);
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${file}: invalid configuration:\n${lines.join('\n')}`);
  }
  const config = parsed.data;
  const problems = crossChecks(config);
  if (problems.length > 0) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `${file}: invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  const dataDir = resolve(dirname(file), config.cluster.data_dir);
  warnings.push(...tlsWarnings(config).map((w) => `${file}: ${w}`));
  return Object.freeze({
    config: deepFreeze(config),
    file,
    dataDir,
    ...(warnings.length > 0 ? { warnings: Object.freeze(warnings) } : {}),
  });
}

/**
 * Top-level keys that were renamed: `shards` (a replication group: a primary and its standbys)
 * became `groups` when "shard" took the meaning of a piece of a distributed table. The old name
 * is still read, with a warning naming the new one; both at once is an error (which one holds
 * the nodes would be a guess).
 */
function renameOldKeys(
  top: Record<string, unknown>,
  file: string,
): { raw: Record<string, unknown>; warnings: string[] } {
  if (!('shards' in top)) return { raw: top, warnings: [] };
  if ('groups' in top) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `${file}: invalid configuration:\n  - shards: is the old name of groups, and groups: is given too; keep only groups:`,
    );
  }
  const { shards, ...rest } = top;
  return {
    raw: { ...rest, groups: shards },
    warnings: [
      `${file}: shards: is the old name of groups: rename it to groups: (shards: is still read, for now)`,
    ],
  };
}

export function allNodes(config: Config): NodeRef[] {
  let position = 0;
  return config.groups.flatMap((s, group) =>
    s.nodes.map((n, index) => {
      const apiPort = n.api_port ?? defaultApiPort(config, position);
      position++;
      return { ...n, group, index, apiPort };
    }),
  );
}

/** The default api_port of the node at `position` among all nodes (0-based, group by group). */
export function defaultApiPort(config: Config, position: number): number {
  return config.http.port + 1 + position;
}

/** The group a database lives in (users.ts). */
export { homeGroup } from './users.js';

export function findNode(config: Config, name: string): NodeRef | undefined {
  return allNodes(config).find((n) => n.name === name);
}

/**
 * The config with nodes added beyond the file's (several hosts: `add-replica --host` and
 * `add-group` record them in etcd, src/ha/store-nodes.ts): each appended to its group, a group
 * one past the last made new; checked as the file's nodes are. Every other setting stays.
 */
export function withAddedNodes(
  loaded: LoadedConfig,
  added: readonly { group: number; node: NodeConfig }[],
): LoadedConfig {
  const groups = loaded.config.groups.map((g) => ({ ...g, nodes: [...g.nodes] }));
  for (const a of added) {
    if (a.group === groups.length) groups.push({ nodes: [], databases: [] });
    const g = groups[a.group];
    if (!g)
      throw new ConfigError(
        ErrorCodes.CONFIG_INVALID,
        `node ${a.node.name}: there is no group ${a.group} (groups 0–${groups.length - 1}; a new group is the next one)`,
      );
    g.nodes.push(a.node);
  }
  const config = { ...loaded.config, groups };
  const problems = crossChecks(config);
  if (problems.length > 0)
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `${loaded.file} with the nodes added in the state store: invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  return Object.freeze({ ...loaded, config: deepFreeze(config) });
}

function crossChecks(config: Config): string[] {
  const problems: string[] = [];
  const names = new Map<string, string>();
  const endpoints = new Map<string, string>();
  const claim = (key: string, what: string) => {
    const prev = endpoints.get(key);
    if (prev) problems.push(`${what}: port ${key.split('|')[1]} is already used by ${prev}`);
    else endpoints.set(key, what);
  };
  const hostKey = (h: string) => (h === '127.0.0.1' || h === '::1' || h === 'localhost' ? 'localhost' : h);
  claim(`localhost|${config.proxy.port}`, 'proxy.port');
  claim(`localhost|${config.http.port}`, 'http.port');
  config.groups.forEach((s, si) =>
    s.nodes.forEach((n, ni) => {
      const where = `groups[${si}].nodes[${ni}]`;
      const prev = names.get(n.name);
      if (prev) problems.push(`${where}.name: "${n.name}" is already the name of ${prev}`);
      else names.set(n.name, where);
      claim(`${hostKey(n.host)}|${n.port}`, `${where}.port`);
    }),
  );
  // The agents' health endpoints listen on http.listen, one port per node: they must clash with
  // nothing else on this host (a derived one is named as such, with how to change it).
  let position = 0;
  config.groups.forEach((s, si) =>
    s.nodes.forEach((n, ni) => {
      const where = `groups[${si}].nodes[${ni}].api_port`;
      const port = n.api_port ?? defaultApiPort(config, position);
      position++;
      const what =
        n.api_port === undefined
          ? `${where} (not set; derived as http.port + 1 + ${position - 1} = ${port}: set api_port explicitly or move http.port)`
          : where;
      if (port > 65535) problems.push(`${what}: ${port} is not a valid port`);
      else claim(`localhost|${port}`, what);
    }),
  );
  const homes = new Map<string, string>();
  config.groups.forEach((g, gi) =>
    g.databases.forEach((db, di) => {
      const where = `groups[${gi}].databases[${di}]`;
      const prev = homes.get(db);
      if (prev) problems.push(`${where}: "${db}" already lives in ${prev} (a database has one home group)`);
      else homes.set(db, `group ${gi}`);
    }),
  );
  if (config.groups.length === 0 && Object.keys(config.proxy.databases).length === 0) {
    problems.push('groups: is required (at least one group; or proxy.databases for a standalone proxy)');
  }
  problems.push(...userProblems(config));
  problems.push(...tlsProblems(config));
  const sync = config.replication.synchronous;
  if (sync.startsWith('quorum ')) {
    const n = Number(sync.slice(7));
    config.groups.forEach((s, si) => {
      if (n > s.nodes.length - 1) {
        problems.push(
          `replication.synchronous: "${sync}" needs ${n} standbys but group ${si} has ${s.nodes.length - 1}`,
        );
      }
    });
  }
  return problems;
}

/** cluster.tls: which CA issues or verifies the node certificates must be unambiguous. */
function tlsProblems(config: Config): string[] {
  const t = config.cluster.tls;
  const p: string[] = [];
  if (t.ca_key && !t.ca_cert)
    p.push('cluster.tls.ca_key: needs cluster.tls.ca_cert (the certificate of that key)');
  if (t.node_cert_dir && !t.ca_cert) {
    p.push(
      'cluster.tls.node_cert_dir: needs cluster.tls.ca_cert (the CA that issued them, which verifies the nodes)',
    );
  }
  if (t.ca_key && t.node_cert_dir) {
    p.push(
      'cluster.tls: ca_key (pgscale issues the node certificates) and node_cert_dir (yours) exclude each other; keep one',
    );
  }
  if (t.ca_cert && !t.ca_key && !t.node_cert_dir) {
    p.push(
      'cluster.tls.ca_cert: needs ca_key (pgscale issues the node certificates with it) or node_cert_dir (certificates you issued)',
    );
  }
  if (t.hostssl_only && t.mode !== 'on')
    p.push('cluster.tls.hostssl_only: needs cluster.tls.mode: on (the nodes serve no TLS without it)');
  const pt = config.proxy.tls;
  if (pt.cluster_ca) {
    if (pt.cert_file || pt.key_file)
      p.push(
        'proxy.tls: cluster_ca (pgscale issues the certificate) and cert_file/key_file (yours) exclude each other; keep one',
      );
    if (pt.mode === 'disable') p.push('proxy.tls.cluster_ca: set proxy.tls.mode to allow or require');
    if (t.node_cert_dir)
      p.push(
        'proxy.tls.cluster_ca: pgscale has no CA key to issue with (cluster.tls.node_cert_dir); give the proxy cert_file and key_file issued by your CA',
      );
  } else if (pt.cert_names.length > 0) {
    p.push(
      'proxy.tls.cert_names: only with proxy.tls.cluster_ca: true (names of the certificate pgscale issues)',
    );
  }
  return p;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1']);

/** Nodes on other hosts than this one talk over the network: without cluster.tls, in the clear. */
function tlsWarnings(config: Config): string[] {
  const hosts = new Set(allNodes(config).map((n) => n.host));
  if ([...hosts].every((h) => LOOPBACK_HOSTS.has(h))) return [];
  if (config.cluster.tls.mode === 'on') {
    // Each host would otherwise create a CA of its own, and no host would trust another's nodes.
    return config.cluster.tls.ca_cert || hosts.size < 2
      ? []
      : [
          'cluster.tls: nodes run on several hosts but cluster.tls.ca_cert is not set: give every host ' +
            'the same CA (ca_cert and ca_key), or copy <data_dir>/ca from the first host to the others ' +
            'before their agents start (docs/tls.md)',
        ];
  }
  return [
    'cluster.tls.mode is off but nodes run on other hosts than localhost: replication and the proxy ' +
      'connect to them without verified TLS. Set cluster.tls.mode: on (docs/tls.md).',
  ];
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path
    .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
    .join('')
    .slice(0);
  const at = path.startsWith('.') ? path.slice(1) : path || '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const accepted = acceptedKeys(issue.path);
    const keys = issue.keys.map((k) => (at === '(top level)' ? k : `${at}.${k}`)).join(', ');
    return `unknown key ${keys}${accepted.length ? ` (accepted keys here: ${accepted.join(', ')})` : ''}`;
  }
  if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) return `${at}: is required`;
  return `${at}: ${issue.message}`;
}

/** The keys the schema accepts at a path, for "unknown key" messages. */
function acceptedKeys(path: readonly PropertyKey[]): string[] {
  let node: unknown = configSchema;
  const unwrap = (s: unknown): unknown => {
    let cur = s as { _zod?: { def?: { type?: string; innerType?: unknown; element?: unknown } } };
    for (let i = 0; i < 10 && cur?._zod?.def; i++) {
      const def = cur._zod.def;
      if (
        (def.type === 'default' ||
          def.type === 'optional' ||
          def.type === 'nullable' ||
          def.type === 'pipe') &&
        def.innerType
      )
        cur = def.innerType;
      else break;
    }
    return cur;
  };
  for (const p of path) {
    node = unwrap(node);
    const def = (
      node as { _zod?: { def?: { type?: string; element?: unknown; shape?: Record<string, unknown> } } }
    )._zod?.def;
    if (!def) return [];
    if (def.type === 'array' && typeof p === 'number') node = def.element;
    else if (def.type === 'object' && typeof p === 'string') node = def.shape?.[p];
    else return [];
  }
  node = unwrap(node);
  const def = (node as { _zod?: { def?: { type?: string; shape?: Record<string, unknown> } } })._zod?.def;
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
