/**
 * A worker of `pgscale proxy --workers N` (proxy-workers.ts runs the primary): a whole proxy with
 * its own pools, given its number and configuration by the primary. Its clients are shown
 * process ids carrying its number (cancel-key.ts), so a CancelRequest that the primary handed to
 * another worker comes here through the primary. Its admin console asks the primary to run SHOW,
 * PAUSE, RESUME, KILL, RELOAD and SHUTDOWN over every worker, and merges the SHOW answers
 * (admin-merge.ts). It stops when the primary says so, on SIGINT/SIGTERM of its own, and at once
 * if the primary is gone (node:cluster). SIGHUP is the primary's to relay: ignored here.
 * What runs inside is a WorkerBody: the proxy of the file's databases here (standaloneBody), a
 * proxy of a cluster over several hosts with `--cluster` (cluster-proxy-worker.ts).
 */
import type { Registry } from 'prom-client';
import type { ProxyConfig } from '../config/schema.js';
import { ErrorCodes, PgscaleError, errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { createRegistry } from '../obs/metrics.js';
import { mergeTables } from '../proxy/admin-merge.js';
import { runPoolCommand } from '../proxy/admin.js';
import { showTable } from '../proxy/admin-show.js';
import type { Table } from '../proxy/admin-show.js';
import type { AdminHooks } from '../proxy/admin-view.js';
import { cancelInstance, setCancelInstance } from '../proxy/frontend/cancel-key.js';
import { ProxyServer } from '../proxy/proxy-server.js';
import { databasesResolver } from '../proxy/resolver.js';
import type { FromWorker, ToWorker, WorkerAsk, WorkerResult, WorkerTask } from './proxy-worker-messages.js';
import { registerProxyMetrics } from './proxy-metrics.js';

function send(m: FromWorker): void {
  if (process.connected) process.send?.(m, undefined, undefined, () => undefined);
}

/** What the worker plumbing gives the proxy a worker runs. */
export interface WorkerPlumbing {
  /** The worker's number (1..N). */
  instance: number;
  config: ProxyConfig;
  log: Logger;
  /** Labelled with the worker's number; the body registers the proxy's metrics there. */
  registry: Registry;
  /** A CancelRequest for another worker's client, sent there through the primary. */
  toSibling: (processId: number, key: Buffer) => void;
  /** SHOW, PAUSE/RESUME/KILL, RELOAD and SHUTDOWN over every worker. */
  adminHooks: AdminHooks;
}

/** The proxy a worker runs. */
export interface WorkerBody {
  server(): ProxyServer | null;
  /** A reload round: `config` is what the primary read (the body may read its own file). */
  reload(config: ProxyConfig): Promise<string[]>;
  stop(): Promise<void>;
}

/** Starts a worker's proxy, listening; its address. */
export type StartBody = (p: WorkerPlumbing) => Promise<{ body: WorkerBody; host: string; port: number }>;

/** The standalone proxy in front of proxy.databases. */
export const standaloneBody: StartBody = async (p) => {
  setCancelInstance(p.instance);
  const proxy = new ProxyServer({
    config: p.config,
    resolve: databasesResolver(p.config),
    log: (l) => p.log.info(l),
    forwardCancel: p.toSibling,
    adminHooks: p.adminHooks,
  });
  registerProxyMetrics(p.registry, () => proxy);
  const body: WorkerBody = {
    server: () => proxy,
    reload: (config) => Promise.resolve(proxy.reload(config, databasesResolver(config))),
    stop: () => proxy.stop(),
  };
  try {
    return { body, ...(await proxy.start()) };
  } catch (e) {
    await proxy.stop().catch(() => undefined);
    throw e;
  }
};

export async function runWorker(log: Logger, startBody: StartBody = standaloneBody): Promise<number> {
  let body: WorkerBody | null = null;
  let instance = 0;
  let nextAsk = 1;
  const asks = new Map<number, { ok: (r: WorkerResult[]) => void; fail: (e: Error) => void }>();
  const ask = (a: WorkerAsk): Promise<WorkerResult[]> =>
    new Promise((ok, fail) => {
      const id = nextAsk++;
      asks.set(id, { ok, fail });
      send({ t: 'ask', id, ask: a });
    });
  let exiting = false;
  const exit = async (code: number) => {
    if (exiting) return;
    exiting = true;
    if (body) await body.stop().catch((e: unknown) => log.error(`stopping failed: ${errorMessage(e)}`));
    process.exit(code);
  };

  const start = async (n: number, config: ProxyConfig) => {
    instance = n;
    const registry = createRegistry({ service: 'pgscale-proxy', worker: String(n) });
    const plumbing: WorkerPlumbing = {
      instance: n,
      config,
      log: log.child({ worker: n }),
      registry,
      toSibling: (pid, key) => send({ t: 'cancel', pid, key: key.toString('base64') }),
      adminHooks: {
        reload: async () => (await ask({ kind: 'reload-all' }))[0]?.result as string[],
        shutdown: () => void ask({ kind: 'shutdown' }),
        show: async (what) => {
          const parts = (await ask({ kind: 'show', what }))
            .filter((p) => p.result !== null)
            .map((p) => ({ worker: p.worker, table: p.result as Table }));
          return mergeTables(what, parts, instance);
        },
        everyWorker: async (cmd, arg) => {
          const parts = await ask({ kind: 'pool', cmd, ...(arg !== undefined ? { arg } : {}) });
          return parts.reduce((n, p) => n + (p.result as number), 0);
        },
      },
    };
    try {
      const started = await startBody(plumbing);
      body = started.body;
      metrics = registry;
      // The number in its clients' process ids: the worker's, or with --cluster its proxy number.
      send({ t: 'ready', host: started.host, port: started.port, cancelId: cancelInstance() });
    } catch (e) {
      send({
        t: 'failed',
        message: errorMessage(e),
        code: e instanceof PgscaleError ? e.code : ErrorCodes.INTERNAL,
      });
      await exit(1);
    }
  };

  let metrics: Registry | null = null;
  const perform = async (task: WorkerTask): Promise<unknown> => {
    const p = body?.server();
    if (!body || !p || !metrics) throw new Error('not started');
    switch (task.kind) {
      case 'show':
        return showTable(p, task.what);
      case 'pool':
        return runPoolCommand(p, task.cmd, task.arg);
      case 'reload':
        return body.reload(task.config);
      case 'metrics':
        return metrics.getMetricsAsJSON();
      case 'health':
        return { clients: p.clients.size };
    }
  };

  process.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'start':
        return void start(m.instance, m.config);
      case 'cancel':
        return body?.server()?.cancel(m.pid, Buffer.from(m.key, 'base64'), true);
      case 'do':
        perform(m.task).then(
          (result) => send({ t: 'done', id: m.id, result }),
          (e: unknown) => send({ t: 'done', id: m.id, error: errorMessage(e) }),
        );
        return;
      case 'answer': {
        const a = asks.get(m.id);
        asks.delete(m.id);
        if (!a) return;
        if (m.error !== undefined) a.fail(new PgscaleError(ErrorCodes.INTERNAL, m.error));
        else a.ok(m.results ?? []);
        return;
      }
      case 'stop':
        return void exit(0);
    }
  });
  process.on('SIGINT', () => void exit(0));
  process.on('SIGTERM', () => void exit(0));
  process.on('SIGHUP', () => undefined);
  send({ t: 'hello' });
  // The worker ends through exit(); until then the IPC channel keeps it alive.
  return new Promise<number>(() => undefined);
}
