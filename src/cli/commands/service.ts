/**
 * `pgscale service install|uninstall`: systemd units for this cluster's long-running processes
 * (src/cli/service-units.ts renders them). install checks what the unit will need — the user
 * exists and can read pgscale and the file, the cluster's secrets belong to that user — and
 * writes each unit atomically; uninstall removes only units pgscale wrote. Neither runs
 * systemctl: the commands to run are printed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { secretsFile } from '../../cluster/secrets.js';
import { defaultConfigPath, loadConfig } from '../../config/load.js';
import type { LoadedConfig } from '../../config/load.js';
import { ConfigError, ErrorCodes, UsageError } from '../../errors.js';
import { parse } from '../args.js';
import { out, warnOnce } from '../context.js';
import { CARRIED_ENV, UNIT_KINDS, UNIT_MARKER, renderUnit, unitName } from '../service-units.js';
import type { UnitKind } from '../service-units.js';

export const help = `Usage: pgscale service install [-c FILE] [--user USER] [--unit-dir DIR] [--units LIST] [--dry-run]
       pgscale service uninstall [-c FILE] [--unit-dir DIR] [--dry-run]

install writes systemd units that run this cluster's processes under systemd:
  pgscale-NAME.service        the controller (pgscale controller -c FILE: nodes, HA, proxy, HTTP API)
  pgscale-NAME-agent.service  the agent of a cluster over several hosts (pgscale agent -c FILE)
  pgscale-NAME-proxy.service  the standalone proxy (pgscale proxy -c FILE, --cluster over etcd)
NAME is cluster.name. By default it writes the controller's unit, or the agent's when ha.store is
etcd, and the proxy's when proxy.databases names servers; --units chooses (a comma list).
The units restart the process on failure, raise LimitNOFILE, reload on \`systemctl reload\`
(SIGHUP) and leave the PostgreSQL servers to the process on stop (KillMode=process). No secret
goes into a unit. uninstall removes the units install wrote (and nothing else): stop and
disable them first (systemctl disable --now pgscale-NAME…).

Options:
  -c, --config FILE  the cluster's configuration (default ./pgscale.yaml)
  --user USER        the user the processes run as (default: the owner of FILE); the cluster's
                     data directory must be that user's (as root, pgscale runs PostgreSQL as
                     its own unprivileged user, PGSCALE_RUN_AS or "pgscale")
  --unit-dir DIR     where to write the units (default /etc/systemd/system)
  --units LIST       controller, agent, proxy (comma-separated)
  --dry-run          print the units and where they would go; write nothing
`;

const DEFAULT_UNIT_DIR = '/etc/systemd/system';
/** pgscale's package root: bin/pgscale.js and docs/ (this file is {src,dist}/cli/commands/). */
const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function run(argv: string[]): number {
  const [action, ...rest] = argv;
  if (!action || action === '--help' || action === '-h') return (out(help), 0);
  if (action !== 'install' && action !== 'uninstall')
    throw new UsageError(
      `pgscale service: unknown action "${action}"; use install or uninstall (see --help)`,
    );
  const { values } = parse(`service ${action}`, rest, {
    user: { type: 'string' },
    'unit-dir': { type: 'string' },
    units: { type: 'string' },
    'dry-run': { type: 'boolean' },
  });
  if (values.help) return (out(help), 0);
  const file = resolve(typeof values.config === 'string' ? values.config : defaultConfigPath());
  const loaded = warnOnce(loadConfig(file));
  const unitDir = resolve(typeof values['unit-dir'] === 'string' ? values['unit-dir'] : DEFAULT_UNIT_DIR);
  const dry = values['dry-run'] === true;
  if (action === 'uninstall') {
    if (values.user !== undefined || values.units !== undefined)
      throw new UsageError(
        'pgscale service uninstall takes no --user or --units: it removes every unit install wrote',
      );
    return uninstall(loaded, unitDir, dry);
  }
  const kinds = typeof values.units === 'string' ? parseUnits(values.units) : defaultUnits(loaded);
  const user = typeof values.user === 'string' ? values.user : ownerName(file);
  return install(loaded, { unitDir, dry, kinds, user });
}

function parseUnits(v: string): UnitKind[] {
  const list = v.split(',').map((s) => s.trim());
  for (const k of list)
    if (!(UNIT_KINDS as readonly string[]).includes(k))
      throw new UsageError(`--units: unknown unit "${k}"; choose from ${UNIT_KINDS.join(', ')}`);
  return [...new Set(list as UnitKind[])];
}

function defaultUnits(loaded: LoadedConfig): UnitKind[] {
  const c = loaded.config;
  const kinds: UnitKind[] = [];
  if (c.groups.length > 0) kinds.push(c.ha.store === 'etcd' ? 'agent' : 'controller');
  if (Object.keys(c.proxy.databases).length > 0) kinds.push('proxy');
  return kinds;
}

interface OsAccount {
  name: string;
  uid: number;
  group: string;
  gid: number;
}

function account(name: string): OsAccount {
  const pw = spawnSync('getent', ['passwd', name], { encoding: 'utf8' }).stdout?.trim().split(':');
  if (!pw || pw.length < 4 || !/^[a-z_][a-z0-9_.-]*\$?$/i.test(name))
    throw new UsageError(`--user: no user "${name}" on this machine (create it, or name another)`);
  const gid = Number(pw[3]);
  const gr = spawnSync('getent', ['group', String(gid)], { encoding: 'utf8' })
    .stdout?.trim()
    .split(':');
  return { name, uid: Number(pw[2]), group: gr?.[0] || String(gid), gid };
}

function ownerName(file: string): string {
  const uid = statSync(file).uid;
  if (uid === process.getuid?.()) return userInfo().username;
  const pw = spawnSync('getent', ['passwd', String(uid)], { encoding: 'utf8' }).stdout?.split(':')[0];
  if (!pw) throw new UsageError(`${file} belongs to uid ${uid}, which has no name here; give --user`);
  return pw;
}

/** Problems that would make the unit fail at its start, found now: each names the fix. */
function check(loaded: LoadedConfig, who: OsAccount, script: string): string[] {
  const problems: string[] = [];
  if (who.uid !== process.getuid?.() && process.getuid?.() === 0) {
    // As root we can ask the kernel what the user may read.
    const readable = (p: string) => spawnSync('test', ['-r', p], { uid: who.uid, gid: who.gid }).status === 0;
    if (!readable(script))
      problems.push(`user ${who.name} cannot read ${script}: install pgscale where it can (npm install -g)`);
    if (!readable(loaded.file)) problems.push(`user ${who.name} cannot read ${loaded.file}`);
  }
  const secrets = secretsFile(loaded.dataDir);
  if (existsSync(secrets)) {
    const owner = statSync(secrets).uid;
    if (owner !== who.uid)
      problems.push(
        `the cluster's data directory ${loaded.dataDir} was created by uid ${owner}, not by ${who.name}: ` +
          `run the service as its creator (--user), or chown -R the data directory`,
      );
  }
  return problems;
}

interface InstallOptions {
  unitDir: string;
  dry: boolean;
  kinds: UnitKind[];
  user: string;
}

function install(loaded: LoadedConfig, o: InstallOptions): number {
  const c = loaded.config;
  if (o.kinds.length === 0)
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `${loaded.file} has no groups and no proxy.databases: nothing to run`,
    );
  if (o.kinds.includes('agent') && c.ha.store !== 'etcd')
    throw new UsageError(
      '--units agent: the agent runs a cluster over several hosts, which needs ha.store: etcd',
    );
  if (o.kinds.includes('proxy') && Object.keys(c.proxy.databases).length === 0 && c.ha.store !== 'etcd')
    throw new UsageError(
      "--units proxy: the controller runs this cluster's proxy; a standalone proxy needs proxy.databases, or ha.store: etcd (proxy --cluster)",
    );
  const who = account(o.user);
  const script = join(PACKAGE_ROOT, 'bin', 'pgscale.js');
  const problems = check(loaded, who, script);
  if (problems.length > 0) throw new ConfigError(ErrorCodes.CONFIG_INVALID, problems.join('\n'));
  const env: Record<string, string> = {};
  for (const k of CARRIED_ENV) if (process.env[k]) env[k] = process.env[k]!;
  const units = o.kinds.map((kind) => ({
    name: unitName(kind, c.cluster.name),
    text: renderUnit({
      kind,
      cluster: c.cluster.name,
      configFile: loaded.file,
      workingDir: dirname(loaded.file),
      user: who.name,
      group: who.group,
      node: process.execPath,
      script,
      docs: join(PACKAGE_ROOT, 'docs', 'operations.md'),
      proxyCluster: kind === 'proxy' && Object.keys(c.proxy.databases).length === 0,
      env,
    }),
  }));
  if (o.dry) {
    for (const u of units) out(`# would write ${join(o.unitDir, u.name)}\n${u.text}`);
    return 0;
  }
  try {
    mkdirSync(o.unitDir, { recursive: true });
    for (const u of units) {
      const path = join(o.unitDir, u.name);
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, u.text, { mode: 0o644 });
      renameSync(tmp, path);
      out(`wrote ${path}`);
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `cannot write into ${o.unitDir} (${err.code ?? err.message}): run as root, or choose --unit-dir`,
    );
  }
  const names = units.map((u) => u.name).join(' ');
  out(`Next: systemctl daemon-reload && systemctl enable --now ${names}`);
  if (o.kinds.includes('controller'))
    out('(stop a controller started with `pgscale up --detach` first: pgscale down)');
  return 0;
}

function uninstall(loaded: LoadedConfig, unitDir: string, dry: boolean): number {
  let removed = 0;
  for (const kind of UNIT_KINDS) {
    const path = join(unitDir, unitName(kind, loaded.config.cluster.name));
    if (!existsSync(path)) continue;
    if (!readFileSync(path, 'utf8').startsWith(UNIT_MARKER)) {
      out(`kept ${path}: pgscale did not write it`);
      continue;
    }
    out(`${dry ? 'would remove' : 'removed'} ${path}`);
    if (!dry) rmSync(path);
    removed++;
  }
  if (removed === 0) out(`no unit of cluster ${loaded.config.cluster.name} in ${unitDir}`);
  else if (!dry) out('Next: systemctl daemon-reload');
  return 0;
}
