/**
 * `pgscale up`, `down` and `destroy`. `up` provisions what is missing, starts every node and
 * returns (with --detach) once every standby streams; without --detach it stays in the
 * foreground, reports nodes that stop, and Ctrl-C (or `pgscale down` from elsewhere) stops the
 * cluster cleanly. The PostgreSQL servers run in their own sessions, so they never receive the
 * terminal's Ctrl-C directly: pgscale stops them in order.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../../errors.js';
import { runningPid } from '../../cluster/instance.js';
import type { Cluster } from '../../cluster/cluster.js';
import { parse } from '../args.js';
import { defaultConfigPath } from '../../config/load.js';
import { INIT_DEFAULTS } from '../../config/template.js';
import { writeConfig } from './init.js';
import { openCluster, out } from '../context.js';
import { printStatus } from './status.js';

export const upHelp = `Usage: pgscale up [-c FILE] [--detach]

Without -c and with no ./pgscale.yaml, first writes the defaults of \`pgscale init\`.
Provisions what is missing (initdb, roles, standbys cloned from the primary), starts every node
and waits until every standby streams. Running it again is harmless.

Options:
  -c, --config FILE  cluster configuration (default ./pgscale.yaml)
  --detach           return once the cluster is ready, leaving it running
  --timeout SECONDS  how long to wait for standbys to stream (default 120)
`;

export const downHelp = `Usage: pgscale down [-c FILE]

Stops every node (fast shutdown: open transactions are rolled back; committed data is kept),
each shard's primary first. A foreground \`pgscale up\` is told to stop as well.
`;

export const destroyHelp = `Usage: pgscale destroy --yes [-c FILE]

Stops every node and deletes the cluster's data directory (data, WAL archive, logs, secrets).
`;

const pidFile = (c: Cluster) => join(c.dataDir, 'up.pid');

export async function up(argv: string[]): Promise<number> {
  const { values } = parse('up', argv, { detach: { type: 'boolean' }, timeout: { type: 'string' } });
  if (values.help) return (out(upHelp), 0);
  const timeout = values.timeout === undefined ? 120 : Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0)
    throw new UsageError(`--timeout must be a positive number of seconds`);
  if (values.config === undefined && !existsSync(defaultConfigPath())) {
    // First run in a directory: start from the defaults `pgscale init` would write.
    out(writeConfig(process.cwd(), defaultConfigPath(), INIT_DEFAULTS));
  }
  const cluster = openCluster(values);
  const t0 = Date.now();
  out(`pgscale: bringing up cluster "${cluster.config.cluster.name}" (${cluster.loaded.file})`);
  await cluster.up({ waitStreamingMs: timeout * 1000 });
  out(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  await printStatus(cluster, false);
  if (values.detach) return 0;
  return foreground(cluster);
}

/** Stays in the foreground until Ctrl-C / SIGTERM, then stops the cluster. */
function foreground(cluster: Cluster): Promise<number> {
  writeFileSync(pidFile(cluster), `${process.pid}\n`);
  out('\nRunning in the foreground; Ctrl-C stops the cluster.');
  const known = new Map<string, boolean>();
  const monitor = setInterval(() => {
    for (const n of cluster.nodes()) {
      const alive = runningPid(cluster.paths(n.name).pgdata) !== null;
      if (known.get(n.name) === true && !alive)
        out(`node ${n.name} has stopped (log: ${cluster.paths(n.name).log})`);
      known.set(n.name, alive);
    }
  }, 1000);
  return new Promise((resolve) => {
    let stopping = false;
    const stopAll = (sig: string) => {
      if (stopping) return;
      stopping = true;
      clearInterval(monitor);
      out(`\n${sig}: stopping the cluster`);
      cluster
        .down()
        .then(() => resolve(0))
        .catch((e: unknown) => {
          out(`stopping failed: ${(e as Error).message}`);
          resolve(1);
        })
        .finally(() => rmSync(pidFile(cluster), { force: true }));
    };
    process.on('SIGINT', () => stopAll('SIGINT'));
    process.on('SIGTERM', () => stopAll('SIGTERM'));
    process.on('SIGHUP', () => stopAll('SIGHUP'));
  });
}

async function stopForeground(cluster: Cluster): Promise<void> {
  const f = pidFile(cluster);
  if (!existsSync(f)) return;
  const pid = Number(readFileSync(f, 'utf8').trim());
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    rmSync(f, { force: true });
    return;
  }
  for (let i = 0; i < 300 && existsSync(f); i++) await new Promise((r) => setTimeout(r, 500));
}

export async function down(argv: string[]): Promise<number> {
  const { values } = parse('down', argv, {});
  if (values.help) return (out(downHelp), 0);
  const cluster = openCluster(values);
  await stopForeground(cluster);
  const stopped = await cluster.down();
  out(stopped.length ? `stopped ${stopped.join(', ')}` : 'no node was running');
  return 0;
}

export async function destroy(argv: string[]): Promise<number> {
  const { values } = parse('destroy', argv, { yes: { type: 'boolean' } });
  if (values.help) return (out(destroyHelp), 0);
  if (!values.yes) throw new UsageError('destroy deletes all data of the cluster; confirm with --yes');
  const cluster = openCluster(values);
  await stopForeground(cluster);
  await cluster.destroy();
  out(`destroyed cluster "${cluster.config.cluster.name}"`);
  return 0;
}
