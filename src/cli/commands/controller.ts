/**
 * The controller process, seen from the CLI. `runController` wires config → cluster → services
 * → controller, handles signals (SIGINT/SIGTERM stop it cleanly) and returns the exit code; the
 * foreground `pgscale up` and the hidden `pgscale controller` command (what `up --detach` starts
 * in the background, JSON logs only) both use it.
 */
import { RotatingLogFile, fdIsFile } from '../../obs/log-file.js';
import { childLogger, createLogger } from '../../obs/logger.js';
import type { Logger } from '../../obs/logger.js';
import type { Cluster } from '../../cluster/cluster.js';
import { Controller } from '../../controller/controller.js';
import { ConfigService } from '../../controller/config-service.js';
import { HaService } from '../../ha/ha-service.js';
import { errorMessage, UsageError } from '../../errors.js';
import { parse } from '../args.js';
import { controllerLogPath } from '../background.js';
import { openCluster, out } from '../context.js';
import { ProxyService } from '../proxy-service.js';
import { buildServices } from '../services.js';

export const help = `Usage: pgscale controller -c FILE [--timeout SECONDS]

Runs the cluster's controller in the foreground, logging JSON lines to stderr: brings the
cluster up, supervises its nodes, runs its services and the HTTP API (http.listen:http.port)
until SIGTERM or SIGINT, then stops them and the nodes. This is the process \`pgscale up --detach\`
starts in the background (logging to <data_dir>/logs/controller.log); \`pgscale up\` without
--detach runs the same with progress for people. SIGHUP reloads the configuration (where a
foreground \`up\` stops). The systemd unit of \`pgscale service install\` runs it; otherwise there is
no need to run it directly.
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('controller', argv, { timeout: { type: 'string' } });
  if (values.help) return (out(help), 0);
  const timeoutS = timeoutOption(values.timeout);
  let clusterLog: Logger | null = null;
  const cluster = openCluster(values, { step: (m) => clusterLog?.info(m) });
  // Started by `up --detach`, stderr is <data_dir>/logs/controller.log: write it ourselves, so
  // that it rotates (log.rotate_size_mb, log.keep_files). Elsewhere (a terminal, systemd's
  // journal) stderr it stays.
  const file = controllerLogPath(cluster.dataDir);
  const { rotate_size_mb: mb, keep_files: keep } = cluster.config.log;
  const destination = fdIsFile(2, file) ? new RotatingLogFile(file, { maxBytes: mb * 1024 * 1024, keep }) : 2;
  const logger = createLogger({ destination, base: { cluster: cluster.config.cluster.name } });
  clusterLog = childLogger(logger, { component: 'cluster' });
  return runController(cluster, logger, { timeoutS, stopOnHangup: false });
}

export function timeoutOption(v: string | boolean | undefined): number {
  const timeout = v === undefined ? 120 : Number(v);
  if (!Number.isFinite(timeout) || timeout <= 0)
    throw new UsageError(`--timeout must be a positive number of seconds`);
  return timeout;
}

/** What add/remove-replica and add/remove-group send a running controller: re-read the node list. */
export const MEMBERS_SIGNAL: NodeJS.Signals = 'SIGUSR2';

export interface RunOptions {
  /** Seconds cluster.up() waits for standbys to stream. */
  timeoutS: number;
  /** SIGHUP stops the controller (a foreground terminal closed); otherwise it reloads the services. */
  stopOnHangup: boolean;
  onReady?: (c: Controller) => Promise<void> | void;
}

export async function runController(cluster: Cluster, logger: Logger, opts: RunOptions): Promise<number> {
  const controller = new Controller(cluster.loaded, cluster, logger, {
    waitStreamingMs: opts.timeoutS * 1000,
  });
  for (const s of buildServices({ loaded: cluster.loaded, cluster, logger, registry: controller.registry }))
    controller.addService(s);
  // Configuration changes (`pgscale reload`, `restart`, `reinit`): last, it reloads the others.
  controller.addService(
    new ConfigService({
      cluster,
      log: childLogger(logger, { component: 'config' }),
      ha: () => controller.services().find((s): s is HaService => s instanceof HaService) ?? null,
      reloadServices: () => controller.reload(),
    }),
  );
  const log = childLogger(logger, { component: 'controller' });
  let signalled: string | null = null;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((r) => (finish = r));
  const onSignal = (sig: NodeJS.Signals) => {
    // SIGUSR2: add-replica / remove-replica / add-group / remove-group changed the nodes in
    // pgscale.yaml (in both modes).
    if (sig === MEMBERS_SIGNAL || (sig === 'SIGHUP' && !opts.stopOnHangup)) {
      log.info(`${sig}: reloading the configuration`);
      try {
        const m = cluster.reloadMembers();
        if (m.groups.after !== m.groups.before) {
          log.info(
            { groups_before: m.groups.before, groups: m.groups.after },
            `groups: ${m.groups.before} → ${m.groups.after}`,
          );
        }
        if (m.added.length || m.removed.length) {
          log.info(
            { added: m.added, removed: m.removed },
            `nodes: ${[...m.added.map((n) => `+${n}`), ...m.removed.map((n) => `-${n}`)].join(' ')}`,
          );
        }
      } catch (e) {
        log.error({ err: e }, `cannot re-read the nodes, keeping the old list: ${errorMessage(e)}`);
      }
      for (const s of controller.services()) if (s instanceof ProxyService) s.membersChanged();
      void controller.reload();
      return;
    }
    if (signalled) {
      log.warn({ signal: sig }, `${sig}: already stopping`);
      return;
    }
    signalled = sig;
    log.info({ signal: sig }, `${sig}: stopping`);
    controller.stop().then(
      () => finish(0),
      (e: unknown) => {
        log.error({ err: e }, `stopping failed: ${errorMessage(e)}`);
        finish(1);
      },
    );
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', MEMBERS_SIGNAL];
  for (const s of signals) process.on(s, onSignal);
  try {
    try {
      await controller.start();
    } catch (e) {
      if (signalled) {
        await finished;
        log.warn(`interrupted by ${String(signalled)} during start-up`);
        return 1;
      }
      throw e;
    }
    await opts.onReady?.(controller);
    return await finished;
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}
