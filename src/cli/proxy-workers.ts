/**
 * The primary of `pgscale proxy --workers N`: N worker processes (node:cluster) serve one port,
 * so the proxy uses N cores. The primary holds the listening socket and hands each new
 * connection to the next worker in turn (cluster's round-robin: even spread, one descriptor
 * passed per connection, nothing per query); each worker runs a whole proxy with its own pools.
 * The primary serves no client itself. It restarts a worker that dies (its clients lose their
 * connections; the others' are untouched), sends cancel requests to the worker that holds the
 * client (the worker's number — with --cluster its proxy number — is in the process id the client
 * was shown, cancel-key.ts), runs
 * the admin console's SHOW/PAUSE/RESUME/KILL/RELOAD over every worker, answers /metrics and
 * /health from every worker's gauges (labelled `worker`), reloads every worker on SIGHUP, and on
 * SIGINT/SIGTERM/SHUTDOWN stops them all; a worker whose primary is gone exits at once
 * (node:cluster's rule), so no worker outlives it.
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import type { Server } from 'node:http';
import { AggregatorRegistry, Counter, Gauge } from 'prom-client';
import type { ProxyConfig } from '../config/schema.js';
import { PgscaleError, ErrorCodes, errorMessage } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import { instanceOf } from '../proxy/frontend/cancel-key.js';
import type { Logger } from '../obs/logger.js';
import { createRegistry } from '../obs/metrics.js';
import { closeHttpServer } from '../web/http-server.js';
import type { FromWorker, ToWorker, WorkerAsk, WorkerResult, WorkerTask } from './proxy-worker-messages.js';
import { logReady, logReload, serveHttp } from './proxy-standalone.js';

/** How long a round over the workers waits for each (a stuck worker is left out, not waited for). */
const ROUND_TIMEOUT_MS = 5000;
/** Workers that have not stopped this long after being asked are killed. */
const STOP_TIMEOUT_MS = 10_000;
const RESTART_MAX_MS = 10_000;
/** A worker that lived this long before dying is restarted at once; sooner, with a growing delay. */
const STABLE_MS = 10_000;

interface Slot {
  instance: number;
  /** The number in its clients' process ids: `instance`, or with --cluster its proxy number. */
  cancelId: number;
  worker: Worker | null;
  ready: boolean;
  startedAt: number;
  restarts: number;
  delayMs: number;
}

interface Round {
  waiting: Set<number>;
  results: WorkerResult[];
  done: (r: WorkerResult[]) => void;
}

export interface PrimaryOptions {
  count: number;
  config: ProxyConfig;
  /** Reads the configuration again (SIGHUP, RELOAD). */
  load: () => Promise<{ config: ProxyConfig; warnings: string[] }>;
  httpAddr: { host: string; port: number } | null;
  log: Logger;
}

export class ProxyPrimary {
  private readonly slots = new Map<number, Slot>();
  private config: ProxyConfig;
  private stopping = false;
  private nextRound = 1;
  private readonly rounds = new Map<number, Round>();
  private starting: { ready: () => void; failed: (e: Error) => void } | null = null;
  private http: Server | null = null;
  private readonly registry = createRegistry({ service: 'pgscale-proxy', worker: 'primary' });
  private readonly restartsTotal: Counter;
  private finished: (code: number) => void = () => undefined;
  /** The port the workers listen on (proxy.port, or the one chosen for port 0). */
  private boundPort: number | null = null;

  constructor(private readonly opts: PrimaryOptions) {
    this.config = opts.config;
    const slots = this.slots;
    new Gauge({
      name: 'pgscale_proxy_workers',
      help: 'Worker processes of the proxy serving clients now.',
      registers: [this.registry],
      collect() {
        this.set([...slots.values()].filter((s) => s.ready).length);
      },
    });
    this.restartsTotal = new Counter({
      name: 'pgscale_proxy_worker_restarts_total',
      help: 'Worker processes of the proxy started again after they died.',
      registers: [this.registry],
    });
  }

  /** Starts the workers and serves until stopped; the exit code. */
  async run(): Promise<number> {
    const { count, log, httpAddr } = this.opts;
    // Round-robin unless NODE_CLUSTER_SCHED_POLICY=none asks for the kernel's choice (workers
    // accepting on the shared socket, often unevenly: Node's documentation says so).
    if (!process.env.NODE_CLUSTER_SCHED_POLICY) cluster.schedulingPolicy = cluster.SCHED_RR;
    cluster.setupPrimary({ silent: false });
    const done = new Promise<number>((r) => (this.finished = r));
    process.on('SIGINT', () => this.stop('SIGINT'));
    process.on('SIGTERM', () => this.stop('SIGTERM'));
    process.on('SIGHUP', () => {
      this.reload().catch((e: unknown) =>
        log.error({ err: e }, `reload failed, keeping the old configuration: ${errorMessage(e)}`),
      );
    });
    try {
      await new Promise<void>((ready, failed) => {
        this.starting = { ready, failed };
        for (let i = 1; i <= count; i++) this.fork(i);
      });
      this.starting = null;
      if (httpAddr)
        this.http = await serveHttp(httpAddr, { metrics: () => this.metrics(), health: () => this.health() });
    } catch (e) {
      this.starting = null;
      this.stop('start-up failed');
      await done;
      throw e;
    }
    logReady(log, { host: this.config.listen, port: this.boundPort ?? this.config.port }, httpAddr, count);
    return done;
  }

  private fork(instance: number): void {
    const slot: Slot = this.slots.get(instance) ?? {
      instance,
      cancelId: instance,
      worker: null,
      ready: false,
      startedAt: 0,
      restarts: 0,
      delayMs: 0,
    };
    this.slots.set(instance, slot);
    const w = cluster.fork();
    slot.worker = w;
    slot.ready = false;
    slot.startedAt = Date.now();
    w.on('message', (m: FromWorker) => this.onMessage(slot, w, m));
    w.on('exit', (code, signal) => this.onExit(slot, w, code, signal));
  }

  private send(w: Worker | null, m: ToWorker): void {
    if (w?.isConnected()) w.send(m, undefined, () => undefined);
  }

  private onMessage(slot: Slot, w: Worker, m: FromWorker): void {
    if (slot.worker !== w) return;
    switch (m.t) {
      case 'hello':
        return this.send(w, { t: 'start', instance: slot.instance, config: this.config });
      case 'ready':
        slot.ready = true;
        slot.cancelId = m.cancelId ?? slot.instance;
        this.boundPort = m.port;
        if (slot.restarts > 0)
          this.opts.log.warn(
            { event: 'proxy_worker_restarted', worker: slot.instance, pid: w.process.pid },
            `proxy worker ${slot.instance} serves again (pid ${w.process.pid})`,
          );
        if (this.starting && [...this.slots.values()].every((s) => s.ready)) this.starting.ready();
        return;
      case 'failed':
        if (this.starting) this.starting.failed(new PgscaleError(m.code as ErrorCode, m.message));
        return;
      case 'cancel': {
        // The worker numbered in the process id, if it runs; a request for no worker is dropped.
        const n = instanceOf(m.pid);
        const owner = [...this.slots.values()].find((s) => s.cancelId === n);
        if (owner?.ready) this.send(owner.worker, { t: 'cancel', pid: m.pid, key: m.key });
        return;
      }
      case 'ask':
        this.ask(m.ask).then(
          (results) => this.send(w, { t: 'answer', id: m.id, results }),
          (e: unknown) => this.send(w, { t: 'answer', id: m.id, error: errorMessage(e) }),
        );
        return;
      case 'done': {
        const r = this.rounds.get(m.id);
        if (!r || !r.waiting.delete(slot.instance)) return;
        if (m.error === undefined) r.results.push({ worker: slot.instance, result: m.result });
        if (r.waiting.size === 0) r.done(r.results);
        return;
      }
    }
  }

  private async ask(a: WorkerAsk): Promise<WorkerResult[]> {
    if (a.kind === 'shutdown') {
      setImmediate(() => this.stop('SHUTDOWN'));
      return [];
    }
    if (a.kind === 'reload-all') return [{ worker: 0, result: await this.reload() }];
    return this.round(a);
  }

  /** Every serving worker's answer to `task` (those that do not answer in time are left out). */
  private round(task: WorkerTask): Promise<WorkerResult[]> {
    const id = this.nextRound++;
    const live = [...this.slots.values()].filter((s) => s.ready && s.worker?.isConnected());
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(), ROUND_TIMEOUT_MS);
      const finish = () => {
        clearTimeout(timer);
        const r = this.rounds.get(id);
        this.rounds.delete(id);
        resolve((r?.results ?? []).sort((a, b) => a.worker - b.worker));
      };
      this.rounds.set(id, { waiting: new Set(live.map((s) => s.instance)), results: [], done: finish });
      if (live.length === 0) return finish();
      for (const s of live) this.send(s.worker, { t: 'do', id, task });
    });
  }

  /** Reads the configuration again and hands it to every worker; the settings needing a restart. */
  async reload(): Promise<string[]> {
    const next = await this.opts.load();
    for (const w of next.warnings) this.opts.log.warn(`warning: ${w}`);
    const restart = new Set<string>();
    if (next.config.workers !== this.config.workers) restart.add('proxy.workers');
    this.config = next.config;
    for (const r of await this.round({ kind: 'reload', config: next.config }))
      for (const x of r.result as string[]) restart.add(x);
    logReload(this.opts.log, [...restart]);
    return [...restart];
  }

  private onExit(slot: Slot, w: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== w) return;
    slot.worker = null;
    slot.ready = false;
    for (const r of this.rounds.values())
      if (r.waiting.delete(slot.instance) && r.waiting.size === 0) r.done(r.results);
    if (this.stopping) {
      if ([...this.slots.values()].every((s) => s.worker === null)) void this.finish();
      return;
    }
    const why = signal ? `signal ${signal}` : `exit code ${code}`;
    if (this.starting) {
      this.starting.failed(
        new PgscaleError(ErrorCodes.INTERNAL, `proxy worker ${slot.instance} exited at start (${why})`),
      );
      return;
    }
    const lived = Date.now() - slot.startedAt;
    slot.delayMs = lived >= STABLE_MS ? 0 : Math.min(Math.max(slot.delayMs * 2, 500), RESTART_MAX_MS);
    slot.restarts++;
    this.restartsTotal.inc();
    this.opts.log.error(
      { event: 'proxy_worker_died', worker: slot.instance, pid: w.process.pid, code, signal },
      `proxy worker ${slot.instance} (pid ${w.process.pid}) died (${why}); its clients lost their connections; ` +
        `starting it again${slot.delayMs ? ` in ${slot.delayMs / 1000} s` : ''}`,
    );
    setTimeout(() => {
      if (!this.stopping) this.fork(slot.instance);
    }, slot.delayMs).unref();
  }

  /** Asks every worker to stop, kills those that do not in time, then ends the command. */
  stop(why: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.opts.log.info(`${why}: stopping the proxy and its workers`);
    const left = [...this.slots.values()].filter((s) => s.worker !== null);
    if (left.length === 0) return void this.finish();
    for (const s of left) this.send(s.worker, { t: 'stop' });
    setTimeout(() => {
      for (const s of this.slots.values()) s.worker?.process.kill('SIGKILL');
    }, STOP_TIMEOUT_MS).unref();
  }

  private async finish(): Promise<void> {
    if (this.http) await closeHttpServer(this.http);
    this.http = null;
    this.finished(0);
  }

  /** Every worker's gauges (each labelled with its `worker`), and the primary's own. */
  private async metrics(): Promise<{ text: string; contentType: string }> {
    const parts = await this.round({ kind: 'metrics' });
    // One family per name: the workers' series and the primary's side by side (by `worker`).
    const merged = AggregatorRegistry.aggregate([
      ...parts.map((p) => p.result as object[]),
      await this.registry.getMetricsAsJSON(),
    ]);
    return { text: await merged.metrics(), contentType: this.registry.contentType };
  }

  private async health(): Promise<Record<string, unknown>> {
    const parts = await this.round({ kind: 'health' });
    const clients = parts.reduce((n, p) => n + ((p.result as { clients: number }).clients ?? 0), 0);
    return { status: 'ok', clients, workers: parts.length, expected_workers: this.opts.count };
  }
}
