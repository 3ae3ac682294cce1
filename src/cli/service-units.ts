/**
 * The systemd units `pgscale service install` writes, as pure functions of what it found: the
 * controller (`pgscale controller`, the foreground process `up --detach` starts: SIGHUP reloads
 * it, where `up` in the foreground stops on SIGHUP), the agent of a cluster over several hosts,
 * and the standalone proxy. The controller and the agent run PostgreSQL servers that must not be
 * signalled by systemd (KillMode=process, as Patroni's unit): on `systemctl stop` the process
 * stops its nodes in order itself (a primary last, fast shutdown), and when it crashes the nodes
 * keep serving and the restarted process takes them over. Nothing secret goes into a unit:
 * passwords stay in <data_dir>/secrets, read by the process.
 */
import { ConfigError, ErrorCodes } from '../errors.js';

export type UnitKind = 'controller' | 'agent' | 'proxy';
export const UNIT_KINDS: readonly UnitKind[] = ['controller', 'agent', 'proxy'];

/** The first line of every unit pgscale writes: `service uninstall` removes only such files. */
export const UNIT_MARKER = '# Written by `pgscale service install`';

/** How long systemd lets the process stop its nodes before SIGKILL (as `pgscale down` waits). */
export const STOP_TIMEOUT_S = 150;
/** Open files: a proxy holds two sockets per client, the controller many log and data files. */
export const NOFILE = 65536;

/** Environment variables a unit carries over from the installing shell (none of them secret). */
export const CARRIED_ENV = ['PGSCALE_PG_BIN', 'PGSCALE_RUN_AS', 'PGSCALE_OPENSSL'] as const;

export interface UnitInput {
  readonly kind: UnitKind;
  /** cluster.name: the units are pgscale-<name>[-agent|-proxy].service. */
  readonly cluster: string;
  readonly configFile: string;
  readonly workingDir: string;
  readonly user: string;
  readonly group: string;
  /** Absolute paths of node and of pgscale's bin/pgscale.js. */
  readonly node: string;
  readonly script: string;
  /** The proxy follows a cluster over several hosts (`proxy --cluster`). */
  readonly proxyCluster?: boolean;
  /** docs/operations.md of this pgscale. */
  readonly docs: string;
  readonly env?: Readonly<Record<string, string>>;
}

export function unitName(kind: UnitKind, cluster: string): string {
  return kind === 'controller' ? `pgscale-${cluster}.service` : `pgscale-${cluster}-${kind}.service`;
}

const DESCRIPTION: Record<UnitKind, string> = {
  controller: 'controller',
  agent: 'agent',
  proxy: 'standalone proxy',
};

/**
 * A value as systemd reads it: specifiers (%) escaped, in Exec lines variables ($) too, quoted
 * when it has spaces or quotes.
 */
function arg(v: string, exec = false): string {
  if (/[\n\r]/.test(v))
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `a line break in ${JSON.stringify(v)} cannot go into a unit`,
    );
  let s = v.replace(/%/g, '%%');
  if (exec) s = s.replace(/\$/g, '$$$$');
  return /^[\w./@:+=,-]+$/.test(s) ? s : `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function renderUnit(u: UnitInput): string {
  const args = [u.node, u.script];
  if (u.kind === 'controller') args.push('controller', '-c', u.configFile);
  else if (u.kind === 'agent') args.push('agent', '-c', u.configFile);
  else args.push('proxy', '-c', u.configFile, ...(u.proxyCluster ? ['--cluster'] : []));
  const runsNodes = u.kind !== 'proxy';
  const lines = [
    `${UNIT_MARKER} for cluster "${u.cluster}" from ${u.configFile}.`,
    '# Run it again after moving pgscale or the file; edit with `systemctl edit` (a drop-in), not here.',
    '[Unit]',
    `Description=pgscale ${DESCRIPTION[u.kind]} of cluster ${u.cluster}`,
    `Documentation=${arg(`file://${u.docs}`)}`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `User=${u.user}`,
    `Group=${u.group}`,
    `WorkingDirectory=${arg(u.workingDir)}`,
    ...Object.entries(u.env ?? {}).map(([k, v]) => `Environment=${arg(`${k}=${v}`)}`),
    `ExecStart=${args.map((a) => arg(a, true)).join(' ')}`,
    // SIGHUP reloads the configuration (the controller's services, the proxy's settings and TLS
    // certificate) without dropping a client.
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=on-failure',
    'RestartSec=5s',
    ...(runsNodes
      ? [
          // Only the main process gets SIGTERM: it stops the PostgreSQL servers in order itself.
          // They run in sessions of their own but in this unit's cgroup; KillMode=control-group
          // (the default) or mixed would SIGTERM every backend at once or SIGKILL the servers left
          // after a crash, and a restart would begin with crash recovery instead of taking over
          // the running nodes.
          'KillMode=process',
          'KillSignal=SIGTERM',
          `TimeoutStopSec=${STOP_TIMEOUT_S}s`,
        ]
      : ['KillMode=mixed', 'KillSignal=SIGTERM', 'TimeoutStopSec=60s']),
    `LimitNOFILE=${NOFILE}`,
    // No privileges gained through setuid binaries (pgscale needs none, as root or not).
    'NoNewPrivileges=true',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}
