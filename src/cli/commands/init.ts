/** `pgscale init`: writes a commented pgscale.yaml for N groups of 1 primary + R standbys. */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadConfig, parseConfig } from '../../config/load.js';
import { ClusterTls } from '../../cluster/tls.js';
import { INIT_DEFAULTS, newClusterId, renderConfig } from '../../config/template.js';
import { findPgbackrest } from '../../cluster/pgbackrest.js';
import type { InitOptions } from '../../config/template.js';
import { ConfigError, ErrorCodes, UsageError } from '../../errors.js';
import { serviceCanReach, serviceUser } from '../../cluster/run-as.js';
import { intOption, parse, renamedOption } from '../args.js';
import { out } from '../context.js';

export const help = `Usage: pgscale init [--dir DIR] [--groups N] [--replicas R] [--port-base P] [options]

Writes DIR/pgscale.yaml (default: the current directory) describing N groups, each a primary
with R streaming standbys, on this host.

Options:
  --dir DIR          directory for pgscale.yaml and the cluster's data (default .)
  --groups N         number of groups (default 1)
  --replicas R       standbys per group (default 2)
  --port-base P      moves every port of the cluster: the PostgreSQL nodes take P, P+1, …,
                     the proxy P+100, the HTTP API P+101 and the nodes' health endpoints
                     P+102, P+103, … (default: nodes 54320…, proxy 6432, HTTP 8008…)
  --proxy-port P     proxy port (default 6432, or P+100 with --port-base)
  --http-port P      HTTP API port (default 8008, or P+101 with --port-base); the nodes'
                     health endpoints take the ports after it
  --name NAME        cluster name (default pgscale); cluster.id is NAME and 8 random hex
                     digits, unique to this cluster
  --tls              cluster.tls.mode: on — creates the cluster CA now (<data_dir>/ca), and every
                     node, the standbys and the proxy use verified TLS (required across hosts;
                     docs/tls.md)
  --no-backup        leave backup.enabled off even where pgBackRest is installed (by default
                     init turns it on there, with a weekly full and a nightly differential backup)
  --force            overwrite an existing pgscale.yaml
`;

/** With --port-base P, PostgreSQL takes P…P+99 (room for added replicas), the rest follows. */
const PORT_BLOCK_NODES = 100;

export function run(argv: string[]): number {
  const { values } = parse('init', argv, {
    dir: { type: 'string' },
    groups: { type: 'string' },
    shards: { type: 'string' },
    replicas: { type: 'string' },
    'port-base': { type: 'string' },
    'proxy-port': { type: 'string' },
    'http-port': { type: 'string' },
    name: { type: 'string' },
    force: { type: 'boolean' },
    tls: { type: 'boolean' },
    'no-backup': { type: 'boolean' },
  });
  if (values.help) return (out(help), 0);
  const dir = resolve(typeof values.dir === 'string' ? values.dir : '.');
  const file = typeof values.config === 'string' ? resolve(values.config) : join(dir, 'pgscale.yaml');
  if (existsSync(file) && !values.force) {
    throw new ConfigError(ErrorCodes.CONFIG_EXISTS, `${file} already exists; use --force to overwrite it`);
  }
  const name = typeof values.name === 'string' ? values.name : INIT_DEFAULTS.name;
  const groups =
    intOption('groups', renamedOption(values, 'groups', 'shards'), 1, 64) ?? INIT_DEFAULTS.groups;
  const replicas = intOption('replicas', values.replicas, 0, 15) ?? INIT_DEFAULTS.replicas;
  const base = intOption('port-base', values['port-base'], 1024, 65000);
  const nodes = groups * (replicas + 1);
  if (base !== undefined && (nodes > PORT_BLOCK_NODES || base + PORT_BLOCK_NODES + 1 + nodes > 65535)) {
    throw new UsageError(
      `--port-base ${base} leaves no room for ${nodes} nodes: the block is P…P+${PORT_BLOCK_NODES - 1} for PostgreSQL, ` +
        `then the proxy, the HTTP API and one health endpoint per node; choose a lower --port-base or fewer nodes`,
    );
  }
  const opts = {
    ...INIT_DEFAULTS,
    name,
    id: newClusterId(name),
    groups,
    replicas,
    tls: values.tls === true,
    // pgBackRest takes over the archive and the backups where it is installed (docs/backup.md).
    backup: values['no-backup'] !== true && findPgbackrest() !== null,
    portBase: base ?? INIT_DEFAULTS.portBase,
    proxyPort:
      intOption('proxy-port', values['proxy-port'], 1, 65535) ??
      (base === undefined ? INIT_DEFAULTS.proxyPort : base + PORT_BLOCK_NODES),
    httpPort:
      intOption('http-port', values['http-port'], 1, 65535) ??
      (base === undefined ? INIT_DEFAULTS.httpPort : base + PORT_BLOCK_NODES + 1),
  };
  const summary = writeConfig(dir, file, opts);
  let ca = '';
  if (opts.tls) {
    // The CA now, not at the first `up`: across hosts it is copied to the others before their
    // agents start (docs/tls.md).
    const tls = new ClusterTls(loadConfig(file));
    tls.ensureCa();
    ca = `\ncreated the cluster CA: ${tls.rootCert} (clients verify with it; its key is in ${join(dirname(dirname(tls.rootCert)), 'ca')})`;
  }
  out(`${summary}${ca}\nNext: pgscale up -c ${file}`);
  return 0;
}

/** Writes a new pgscale.yaml (used by `init` and by `up` when there is none); returns a summary. */
export function writeConfig(dir: string, file: string, opts: InitOptions): string {
  mkdirSync(dir, { recursive: true });
  let note = '';
  if (serviceUser() && !serviceCanReach(dir)) {
    // As root, PostgreSQL runs as an unprivileged user that must reach its data directory.
    const tag = createHash('sha256').update(dir).digest('hex').slice(0, 8);
    opts = { ...opts, dataDir: `/var/lib/pgscale/${opts.name}-${tag}` };
    note =
      `\nRunning as root: PostgreSQL runs as user "${serviceUser()!.name}", which cannot enter ${dir};\n` +
      `the data directory is therefore ${opts.dataDir} (cluster.data_dir).`;
  }
  opts = { ...opts, id: opts.id ?? newClusterId(opts.name) };
  const text = renderConfig(opts);
  parseConfig(text, file); // what we write must load
  writeFileSync(file, text);
  const last = opts.portBase + opts.groups * (opts.replicas + 1) - 1;
  return (
    `wrote ${file}: ${opts.groups} group(s) × (1 primary + ${opts.replicas} standbys), ports ${opts.portBase}–${last}, ` +
    `proxy ${opts.proxyPort}, HTTP ${opts.httpPort}, health endpoints ${opts.httpPort + 1}–${opts.httpPort + opts.groups * (opts.replicas + 1)}.${note}`
  );
}
