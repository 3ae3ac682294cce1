/**
 * The controller: the one long-running pgscale process per cluster on this host. It brings the
 * cluster up, supervises the local nodes, runs the services (the proxy, later HA) and serves the
 * HTTP API; on stop it takes them down in reverse order and stops the nodes. While it runs,
 * `<data_dir>/controller.json` names it, so a second controller refuses to start and the CLI
 * knows whom to ask. Signals and process exit belong to the caller (src/cli), not to this class.
 *
 * Start order: cluster.up() → supervisor → services (in the order added) → HTTP API.
 * Stop order:  HTTP API stays up while services stop (reverse order) so /health says "stopping",
 *              then HTTP API → cluster.down() → controller.json removed.
 */
import type { Cluster } from '../cluster/cluster.js';
import type { LoadedConfig } from '../config/load.js';
import { ErrorCodes, errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { childLogger } from '../obs/logger.js';
import type { Registry } from '../obs/metrics.js';
import { createRegistry } from '../obs/metrics.js';
import { HttpApi, checkListen, url } from '../web/http-api.js';
import type { ServiceReport } from '../web/http-api.js';
import type { ControllerInfo } from '../web/status-report.js';
import { randomBytes } from 'node:crypto';
import {
  ControllerError,
  claimControllerFile,
  removeApiToken,
  writeApiToken,
  liveController,
  releaseControllerFile,
} from './controller-file.js';
import type { ServiceReload } from './config-service.js';
import type { Service, ServiceState } from './service.js';
import { Supervisor } from './supervisor.js';

export type ControllerState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface ControllerOptions {
  /** How long cluster.up() waits for standbys to stream (default 120 s). */
  waitStreamingMs?: number;
  /** Supervision period (default 1000 ms). */
  superviseIntervalMs?: number;
  /** Longest wait for one service's stop() before moving on (default 30 s). */
  serviceStopTimeoutMs?: number;
}

interface Entry {
  service: Service;
  state: ServiceState;
  error?: string;
}

export class Controller {
  /** Metrics of this controller; services register theirs here to appear at GET /metrics. */
  readonly registry: Registry;
  readonly supervisor: Supervisor;
  private readonly entries: Entry[] = [];
  private readonly log: Logger;
  private readonly http: HttpApi;
  private current: ControllerState = 'new';
  private info: ControllerInfo | null = null;
  private claimed = false;
  /** Bearer token of the HTTP API's changing endpoints, in <data_dir>/api-token (0600). */
  private token: string | null = null;
  private stopRequested = false;
  private starting: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;

  constructor(
    readonly loaded: LoadedConfig,
    readonly cluster: Cluster,
    logger: Logger,
    private readonly opts: ControllerOptions = {},
  ) {
    this.log = childLogger(logger, { component: 'controller' });
    this.registry = createRegistry();
    this.supervisor = new Supervisor(cluster, logger, this.registry, opts.superviseIntervalMs ?? 1000);
    this.entries.push({ service: this.supervisor, state: 'registered' });
    const { listen, port } = loaded.config.http;
    this.http = new HttpApi({
      host: listen,
      port,
      cluster,
      registry: this.registry,
      logger: childLogger(logger, { component: 'http' }),
      state: () => (this.current === 'running' && this.problems().length > 0 ? 'degraded' : this.current),
      controller: () => this.info,
      services: () => this.serviceReports(),
      actions: async (method, path, body, query) => {
        for (const e of this.entries) {
          if (e.state !== 'running' || !e.service.handle) continue;
          const r = await e.service.handle(method, path, body, query);
          if (r) return r;
        }
        return null;
      },
      token: () => this.token,
    });
  }

  get state(): ControllerState {
    return this.current;
  }

  /** What controller.json says while this controller runs (null before start and after stop). */
  controllerInfo(): ControllerInfo | null {
    return this.info;
  }

  /** Registers a service; it starts after the cluster is up, in the order of registration. */
  addService(service: Service): void {
    if (this.current !== 'new') {
      throw new ControllerError(
        ErrorCodes.INTERNAL,
        `service ${service.name} added after the controller started`,
      );
    }
    if (this.entries.some((e) => e.service.name === service.name)) {
      throw new ControllerError(ErrorCodes.INTERNAL, `two services are named ${service.name}`);
    }
    this.entries.push({ service, state: 'registered' });
  }

  services(): readonly Service[] {
    return this.entries.map((e) => e.service);
  }

  start(): Promise<void> {
    if (this.current !== 'new') {
      return Promise.reject(
        new ControllerError(ErrorCodes.INTERNAL, `the controller cannot start when ${this.current}`),
      );
    }
    this.current = 'starting';
    this.starting = this.doStart();
    return this.starting;
  }

  /**
   * Asks every running service to re-read its configuration (SIGHUP, `pgscale reload`); logs and
   * returns what each needs a restart for.
   */
  async reload(): Promise<ServiceReload[]> {
    const out: ServiceReload[] = [];
    for (const e of this.entries) {
      if (e.state !== 'running' || !e.service.reload) continue;
      try {
        const restart = await e.service.reload();
        out.push({ service: e.service.name, restart });
        this.log.info(
          { service: e.service.name, needs_restart: restart },
          `service ${e.service.name} reloaded${restart.length ? `; needs a restart: ${restart.join(', ')}` : ''}`,
        );
      } catch (err) {
        out.push({ service: e.service.name, restart: [], error: errorMessage(err) });
        this.log.error(
          { service: e.service.name, err },
          `reload of ${e.service.name} failed, keeping the old configuration: ${errorMessage(err)}`,
        );
      }
    }
    return out;
  }

  private async doStart(): Promise<void> {
    const { dataDir } = this.loaded;
    const { listen, port } = this.loaded.config.http;
    this.info = { pid: process.pid, http: { host: listen, port }, started_at: new Date().toISOString() };
    let clusterUp = false;
    try {
      const other = liveController(dataDir);
      if (other && other.pid !== process.pid) {
        throw new ControllerError(
          ErrorCodes.USAGE,
          `another controller (pid ${other.pid}) is already running cluster "${this.loaded.config.cluster.name}" ` +
            `(HTTP API ${url(other.http.host, other.http.port)}); \`pgscale down\` stops it`,
        );
      }
      await checkHttpPort(this.loaded);
      for (const e of this.entries) await e.service.preflight?.();
      // controller.json is the lock. In a brand-new data directory it can only be written once
      // the cluster exists (the cluster refuses a data directory holding files it does not know).
      if (this.cluster.identity()) this.claim();
      this.log.info(
        { cluster: this.loaded.config.cluster.name, config: this.loaded.file, data_dir: dataDir },
        'starting the cluster',
      );
      await this.cluster.up({ waitStreamingMs: this.opts.waitStreamingMs ?? 120_000 });
      clusterUp = true;
      if (!this.claimed) this.claim();
      for (const e of this.entries) {
        this.abortIfStopRequested();
        e.state = 'starting';
        try {
          await e.service.start();
        } catch (err) {
          e.state = 'failed';
          e.error = errorMessage(err);
          throw new ControllerError(
            ErrorCodes.INTERNAL,
            `service ${e.service.name} did not start: ${errorMessage(err)}`,
            { cause: err },
          );
        }
        e.state = 'running';
        this.log.info({ service: e.service.name }, `service ${e.service.name} started`);
      }
      this.abortIfStopRequested();
      await this.http.start();
      this.current = 'running';
      this.log.info(
        { http: this.info.http, services: this.entries.map((e) => e.service.name) },
        `controller ready (pid ${process.pid}, HTTP API ${url(listen, port)})`,
      );
    } catch (err) {
      this.log.error({ err }, `start failed: ${errorMessage(err)}`);
      await this.stopServices();
      await this.http.stop();
      // Nodes this start brought up would run unsupervised without us: stop them again. When
      // cluster.up() itself failed they stay as it left them, for the logs to be read.
      try {
        if (clusterUp) await this.downCluster();
      } catch {
        // logged by downCluster; the start error is the one to report
      } finally {
        this.release();
        this.current = 'failed';
      }
      throw err;
    }
  }

  private abortIfStopRequested(): void {
    if (this.stopRequested) {
      throw new ControllerError(ErrorCodes.INTERNAL, 'stop requested while starting');
    }
  }

  private claim(): void {
    claimControllerFile(this.loaded.dataDir, this.info!);
    this.claimed = true;
    this.token = randomBytes(24).toString('base64url');
    writeApiToken(this.loaded.dataDir, this.token);
  }

  private release(): void {
    if (this.claimed) {
      releaseControllerFile(this.loaded.dataDir, process.pid);
      removeApiToken(this.loaded.dataDir);
    }
    this.token = null;
    this.claimed = false;
    this.info = null;
  }

  /** Stops services (reverse order), the HTTP API, then the nodes. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.current === 'new') {
      this.current = 'stopped';
      return;
    }
    if (this.current === 'starting') {
      this.stopRequested = true;
      this.log.info('stop requested during start-up; stopping once the current step ends');
      await this.starting?.catch(() => undefined);
      // A start that failed has undone what it did; one that finished first is stopped below.
    }
    if (this.current !== 'running') return;
    this.current = 'stopping';
    this.log.info('stopping');
    try {
      await this.stopServices();
      await this.http.stop();
      await this.downCluster();
    } finally {
      this.release();
      this.current = 'stopped';
      this.log.info('controller stopped');
    }
  }

  private async stopServices(): Promise<void> {
    const limit = this.opts.serviceStopTimeoutMs ?? 30_000;
    for (const e of [...this.entries].reverse()) {
      if (e.state !== 'running' && e.state !== 'starting' && e.state !== 'failed') continue;
      e.state = 'stopping';
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          e.service.stop(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`did not stop within ${limit / 1000} s`)), limit);
          }),
        ]);
        e.state = 'stopped';
        this.log.info({ service: e.service.name }, `service ${e.service.name} stopped`);
      } catch (err) {
        e.state = 'failed';
        e.error = errorMessage(err);
        this.log.error({ err, service: e.service.name }, `service ${e.service.name}: ${errorMessage(err)}`);
      } finally {
        clearTimeout(timer);
      }
    }
  }

  private async downCluster(): Promise<void> {
    try {
      const stopped = await this.cluster.down();
      this.log.info(
        { nodes: stopped },
        stopped.length ? `stopped ${stopped.join(', ')}` : 'no node was running',
      );
    } catch (err) {
      this.log.error({ err }, `stopping the nodes failed: ${errorMessage(err)}`);
      throw err;
    }
  }

  private serviceReports(): ServiceReport[] {
    return this.entries.map((e) => {
      let status: unknown = null;
      let error = e.error;
      let state: ServiceState = e.state;
      try {
        status = e.service.status?.() ?? null;
        const problem = e.state === 'running' ? (e.service.problem?.() ?? null) : null;
        if (problem) {
          state = 'degraded';
          error = problem;
        }
      } catch (err) {
        error = errorMessage(err);
      }
      return {
        name: e.service.name,
        state,
        status,
        reloads: typeof e.service.reload === 'function',
        ...(error ? { error } : {}),
      };
    });
  }

  /** Problems running services report now (see Service.problem). */
  problems(): { service: string; problem: string }[] {
    const out: { service: string; problem: string }[] = [];
    for (const e of this.entries) {
      if (e.state !== 'running') continue;
      try {
        const p = e.service.problem?.() ?? null;
        if (p) out.push({ service: e.service.name, problem: p });
      } catch (err) {
        out.push({ service: e.service.name, problem: errorMessage(err) });
      }
    }
    return out;
  }
}

/** Fails naming http.port (or http.listen) when the HTTP API could not listen; nothing is started. */
export async function checkHttpPort(loaded: LoadedConfig): Promise<void> {
  const { listen, port } = loaded.config.http;
  await checkListen(listen, port, loaded.file);
}
