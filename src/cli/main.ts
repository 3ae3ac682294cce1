/**
 * The `pgscale` command: dispatches to a command module, prints errors as one clear message
 * (with the error's stable code under PGSCALE_DEBUG=1) and maps them to exit codes:
 * 0 success, 1 failure, 2 usage error.
 */
import { readFileSync } from 'node:fs';
import { PgscaleError, UsageError } from '../errors.js';
import { dropOutputOnBrokenPipe } from './broken-pipe.js';
import * as agentCmd from './commands/agent.js';
import * as backupCmd from './commands/backup.js';
import * as controllerCmd from './commands/controller.js';
import * as dashboard from './commands/dashboard.js';
import * as demo from './commands/demo.js';
import * as doctor from './commands/doctor.js';
import * as groups from './commands/groups.js';
import * as ha from './commands/ha.js';
import * as haproxyConfig from './commands/haproxy-config.js';
import * as init from './commands/init.js';
import * as proxy from './commands/proxy.js';
import * as psql from './commands/psql.js';
import * as reloadCmd from './commands/reload.js';
import * as replicas from './commands/replicas.js';
import * as restartCmd from './commands/restart.js';
import * as rotateCerts from './commands/rotate-certs.js';
import * as service from './commands/service.js';
import * as shards from './commands/shards.js';
import * as status from './commands/status.js';
import * as upCmd from './commands/up.js';

type Handler = (argv: string[]) => number | Promise<number>;

const commands: Record<string, { run: Handler; summary: string; hidden?: true }> = {
  demo: { run: demo.run, summary: 'build a cluster here, measure what pgscale brings, write a report' },
  init: { run: init.run, summary: 'write a commented pgscale.yaml' },
  up: { run: upCmd.up, summary: 'provision and start the cluster and its controller (HTTP API)' },
  status: { run: status.run, summary: 'show every node (role, lag, slot, archive)' },
  down: { run: upCmd.down, summary: 'stop the controller and every node' },
  dashboard: { run: dashboard.run, summary: 'print (--open: open) the URL of the live dashboard' },
  destroy: { run: upCmd.destroy, summary: 'stop and delete all data (--yes)' },
  'add-replica': { run: replicas.add, summary: 'add a standby online' },
  'remove-replica': { run: replicas.remove, summary: 'remove a standby online' },
  'add-group': { run: groups.addGroup, summary: 'add a group (primary and standbys) online' },
  'remove-group': { run: groups.removeGroup, summary: 'remove the last group online (holding no shard)' },
  'move-shard': {
    run: shards.moveShard,
    summary: 'move a shard (and its colocated shards) to another group online',
  },
  rebalance: {
    run: shards.rebalance,
    summary: 'even out the shards over the groups online (--status, --cancel)',
  },
  'drain-group': { run: shards.drainGroup, summary: 'move every shard off a group, so it can be removed' },
  switchover: { run: ha.switchover, summary: 'planned change of primary, without client errors' },
  failover: { run: ha.failover, summary: 'fence the primary and promote a standby now' },
  history: { run: ha.history, summary: 'HA events: detection, fencing, promotion, rejoin' },
  'pause-ha': { run: ha.pauseHa, summary: 'pause automatic failover (maintenance)' },
  reload: { run: reloadCmd.reload, summary: 'apply a changed pgscale.yaml to the running cluster' },
  'edit-config': {
    run: reloadCmd.editConfig,
    summary: 'edit pgscale.yaml, check it, show the change, apply it',
  },
  restart: { run: restartCmd.restart, summary: 'rolling restart (standbys, then a switchover); --pending' },
  reinit: { run: restartCmd.reinit, summary: 'rebuild a standby from its primary' },
  'resume-ha': { run: ha.resumeHa, summary: 'resume automatic failover' },
  backup: { run: backupCmd.backup, summary: 'take a backup now with pgBackRest (--type full|diff|incr)' },
  backups: { run: backupCmd.backups, summary: "list each group's backups (--verify checks them)" },
  verify: { run: backupCmd.verify, summary: 'check every backup and WAL file against its checksum' },
  restore: {
    run: backupCmd.restore,
    summary: 'point-in-time recovery: --to TIME|LSN|latest, --into DIR or --in-place',
  },
  psql: {
    run: psql.psql,
    summary: 'run psql as the superuser on a node, or as an application user (--user)',
  },
  url: { run: psql.url, summary: 'print an application connection URI (--user, --db)' },
  agent: { run: agentCmd.run, summary: "run this host's nodes of a cluster over several hosts (etcd)" },
  proxy: { run: proxy.run, summary: 'run the proxy alone (pgscale.yaml or a pgbouncer.ini)' },
  'haproxy-config': {
    run: haproxyConfig.run,
    summary: 'print a haproxy.cfg: writes to the primary, reads over the replicas',
  },
  doctor: { run: doctor.run, summary: 'show the PostgreSQL binaries found and what is missing' },
  'rotate-certs': {
    run: rotateCerts.run,
    summary: 'renew expiring TLS certificates (--all: every one) and load them without an outage',
  },
  service: { run: service.run, summary: 'install or uninstall systemd units (controller, agent, proxy)' },
  // What `up --detach` runs in the background; not listed in the help.
  controller: { run: controllerCmd.run, summary: 'run the controller in the foreground', hidden: true },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function usage(): string {
  const listed = Object.entries(commands).filter(([, c]) => !c.hidden);
  const width = Math.max(...listed.map(([name]) => name.length));
  return (
    `pgscale ${version()}: horizontal scaling for PostgreSQL\n\n` +
    `Usage: pgscale <command> [options]   (pgscale <command> --help for details)\n\nCommands:\n` +
    listed.map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`).join('\n') +
    `\n\nEvery command takes -c FILE (default ./pgscale.yaml).\n`
  );
}

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  dropOutputOnBrokenPipe(process.stdout);
  dropOutputOnBrokenPipe(process.stderr);
  let code: number;
  try {
    if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
      process.stdout.write(usage());
      code = 0;
    } else if (cmd === '--version' || cmd === '-V') {
      process.stdout.write(`${version()}\n`);
      code = 0;
    } else {
      const c = commands[cmd];
      if (!c) throw new UsageError(`unknown command "${cmd}"; run pgscale --help for the list`);
      code = await c.run(rest);
    }
  } catch (e) {
    code = e instanceof UsageError ? 2 : 1;
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`pgscale: ${msg}\n`);
    if (process.env.PGSCALE_DEBUG && e instanceof Error) {
      process.stderr.write(`${e instanceof PgscaleError ? e.code + '\n' : ''}${e.stack ?? ''}\n`);
    }
  }
  process.exitCode = code;
}
