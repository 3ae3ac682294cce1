/**
 * `pgscale up`, `down` and `destroy`. `up` runs the cluster's controller (src/controller): in the
 * foreground, where Ctrl-C or SIGTERM stops it and the nodes cleanly, or with --detach as a
 * background process that `up` waits for and then leaves running. `down` asks the controller to
 * stop (SIGTERM to the pid in <data_dir>/controller.json, waiting for it to exit), then stops any
 * node still running. The PostgreSQL servers run in their own sessions, so they never receive the
 * terminal's Ctrl-C directly: the controller stops them in order.
 */
import { existsSync } from 'node:fs';
import { runningPid } from '../../cluster/instance.js';
import type { Cluster } from '../../cluster/cluster.js';
import { checkAllPorts } from '../port-check.js';
import { checkStoreKeys, destroyStoreKeys } from '../store-keys.js';
import {
  ControllerError,
  liveController,
  pidAlive,
  stopController,
} from '../../controller/controller-file.js';
import { defaultConfigPath } from '../../config/load.js';
import { INIT_DEFAULTS } from '../../config/template.js';
import { ErrorCodes, UsageError } from '../../errors.js';
import { createLogger } from '../../obs/logger.js';
import { url } from '../../web/http-api.js';
import { parse } from '../args.js';
import { controllerLogPath, startInBackground } from '../background.js';
import { openCluster, out } from '../context.js';
import { runController, timeoutOption } from './controller.js';
import { writeConfig } from './init.js';
import { applyFile, printReload } from './reload.js';
import { printStatus } from './status.js';

export const upHelp = `Usage: pgscale up [-c FILE] [--detach] [--timeout SECONDS]

Without -c and with no ./pgscale.yaml, first writes the defaults of \`pgscale init\`.
Runs the cluster's controller: it provisions what is missing (initdb, roles, standbys cloned
from the primary), starts every node, waits until every standby streams, then supervises the
nodes and serves the HTTP API on http.listen:http.port (/health, /status, /metrics, /services;
see docs/http-api.md). Without --detach it stays in the foreground (JSON logs on stderr) and
Ctrl-C stops the controller and the nodes. Run again while a controller runs, it applies a changed
file as \`pgscale reload\` does (and otherwise changes nothing).

Options:
  -c, --config FILE  cluster configuration (default ./pgscale.yaml)
  --detach           start the controller in the background (log: <data_dir>/logs/controller.log),
                     return once it is ready
  --timeout SECONDS  how long to wait for standbys to stream (default 120)
`;

export const downHelp = `Usage: pgscale down [-c FILE]

Stops the controller (SIGTERM; it stops its services, its HTTP API and the nodes), then any node
still running (fast shutdown: open transactions are rolled back; committed data is kept), each
group's primary first.
`;

export const destroyHelp = `Usage: pgscale destroy --yes [-c FILE]

Stops the controller and every node and deletes the cluster's data directory (data, WAL
archive, logs, secrets). With ha.store etcd it also removes the cluster's keys from etcd (those
under ha.etcd.prefix/cluster.id, when this cluster holds them); if etcd cannot be reached it says
which prefix to remove and exits 1.
`;

/** How long `down` waits for the controller to exit before killing it. */
const STOP_TIMEOUT_MS = 150_000;

export async function up(argv: string[]): Promise<number> {
  const { values } = parse('up', argv, { detach: { type: 'boolean' }, timeout: { type: 'string' } });
  if (values.help) return (out(upHelp), 0);
  const timeoutS = timeoutOption(values.timeout);
  if (values.config === undefined && !existsSync(defaultConfigPath())) {
    // First run in a directory: start from the defaults `pgscale init` would write.
    out(writeConfig(process.cwd(), defaultConfigPath(), INIT_DEFAULTS));
  }
  const cluster = openCluster(values);
  const name = cluster.config.cluster.name;
  const running = liveController(cluster.dataDir);
  if (running) {
    const where = `pid ${running.pid}, HTTP API ${url(running.http.host, running.http.port)}`;
    // A changed file is applied as \`pgscale reload\` does (what cannot change online is refused).
    const r = await applyFile(cluster);
    if (r.status !== 200 || ((r.body.changes as unknown[] | undefined)?.length ?? 0) > 0) {
      out(`pgscale: cluster "${name}" is running (${where}); applying ${cluster.loaded.file}`);
      return printReload(r, cluster.loaded.file);
    }
    if (!values.detach) {
      throw new ControllerError(
        ErrorCodes.USAGE,
        `the controller of cluster "${name}" is already running (${where}); \`pgscale down\` stops it`,
      );
    }
    out(`pgscale: the controller of cluster "${name}" is already running (${where})\n`);
    await printStatus(cluster, false);
    return 0;
  }
  const t0 = performance.now();
  out(`pgscale: bringing up cluster "${name}" (${cluster.loaded.file})`);
  if (values.detach) {
    // Check here what would stop the controller at once, so the message comes straight to the
    // terminal and nothing (not even the log file) is created.
    await checkAllPorts(cluster);
    await cluster.preflight();
    await checkStoreKeys(cluster);
    const c = await startInBackground(cluster, timeoutS, (l) => out(`  ${l}`));
    out(`ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    out(
      `controller running in the background: pid ${c.pid}, HTTP API ${url(cluster.config.http.listen, cluster.config.http.port)}, log ${c.log}\n`,
    );
    await printStatus(cluster, false);
    return 0;
  }
  await checkAllPorts(cluster);
  await checkStoreKeys(cluster);
  return runController(cluster, createLogger({ base: { cluster: name } }), {
    timeoutS,
    stopOnHangup: true,
    onReady: async () => {
      out(`ready in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      await printStatus(cluster, false);
      out(
        `\nRunning in the foreground (controller pid ${process.pid}, HTTP API ${url(cluster.config.http.listen, cluster.config.http.port)}); Ctrl-C stops the cluster.`,
      );
    },
  });
}

/** Stops the controller if one runs; says so. */
async function stopRunningController(cluster: Cluster): Promise<void> {
  const r = await stopController(cluster.dataDir, STOP_TIMEOUT_MS);
  if (!r) return;
  out(
    r.killed
      ? `the controller (pid ${r.pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s and was killed; see ${controllerLogPath(cluster.dataDir)}`
      : `stopped the controller (pid ${r.pid})`,
  );
}

export async function down(argv: string[]): Promise<number> {
  const { values } = parse('down', argv, {});
  if (values.help) return (out(downHelp), 0);
  const cluster = openCluster(values);
  const alive = () =>
    cluster.nodes().filter((n) => {
      const pid = runningPid(cluster.paths(n.name).pgdata);
      return pid !== null && pidAlive(pid); // a killed, unreaped postmaster is not running
    });
  const before = alive().map((n) => n.name);
  await stopRunningController(cluster);
  await cluster.down();
  const still = new Set(alive().map((n) => n.name));
  const stopped = before.filter((n) => !still.has(n));
  out(stopped.length ? `stopped ${stopped.join(', ')}` : 'no node was running');
  return 0;
}

export async function destroy(argv: string[]): Promise<number> {
  const { values } = parse('destroy', argv, { yes: { type: 'boolean' } });
  if (values.help) return (out(destroyHelp), 0);
  if (!values.yes) throw new UsageError('destroy deletes all data of the cluster; confirm with --yes');
  const cluster = openCluster(values);
  await stopRunningController(cluster);
  // The keys first: they are found by the data directory's identity, which destroy removes.
  const keys = await destroyStoreKeys(cluster);
  await cluster.destroy();
  if (keys) out(keys);
  out(`destroyed cluster "${cluster.config.cluster.name}"`);
  return keys?.startsWith('warning:') ? 1 : 0;
}
