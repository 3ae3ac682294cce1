/**
 * Configuration changes while the cluster runs, inside the controller (which holds the running
 * configuration): POST /config/reload takes in a new version of pgscale.yaml (config-diff.ts says
 * what each change takes; one refused change and nothing is applied), renders the nodes' files
 * again and reloads them, reports per node what PostgreSQL takes only at a restart (pending
 * restart), reloads the services (the proxy says what needs its restart) and records it all in
 * the history. POST /config/restart and /config/reinit are the rolling restart and the rebuild
 * of a standby (rolling-restart.ts). The CLI's `reload`, `up`, `edit-config`, `restart` and
 * `reinit` call these routes.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import type { Cluster } from '../cluster/cluster.js';
import { withClient } from '../cluster/sql.js';
import type { LoadedConfig, NodeRef } from '../config/load.js';
import { loadConfig, parseConfig } from '../config/load.js';
import { errorMessage } from '../errors.js';
import { rotateCertificates } from '../cluster/tls-rotate.js';
import type { HaService } from '../ha/ha-service.js';
import type { Logger } from '../obs/logger.js';
import type { ConfigChange } from './config-diff.js';
import { diffConfig } from './config-diff.js';
import { reinitNode, rollingRestart } from './rolling-restart.js';
import type { RestartContext } from './rolling-restart.js';
import type { Service } from './service.js';

/** What one service's reload said (Controller.reload). */
export interface ServiceReload {
  service: string;
  /** Settings it took in only partly: they need a restart of the service. */
  restart: string[];
  error?: string;
}

export interface ConfigServiceDeps {
  cluster: Cluster;
  log: Logger;
  /** High availability when it runs (its history, switchover and busy marks). */
  ha: () => HaService | null;
  /** Reloads every running service and says what each needs a restart for. */
  reloadServices: () => Promise<ServiceReload[]>;
}

/** A node after the reload: what it takes only at a restart, what PostgreSQL refused. */
export interface NodeReload {
  name: string;
  group: number;
  pending_restart: string[];
  errors: string[];
}

export interface ReloadResult {
  dry_run: boolean;
  changes: ConfigChange[];
  nodes: NodeReload[];
  services: ServiceReload[];
  /** Certificates renewed because they expire within 30 days (cluster TLS; tls-rotate.ts). */
  certificates?: { what: string; valid_to: string; loaded: string; error?: string }[];
}

const ReloadBody = z.strictObject({
  text: z.string().optional().describe('the new file, not yet written (edit-config); default: read the file'),
  dry_run: z.boolean().optional().describe('only say what would change'),
  file: z.string().optional().describe('the file the text comes from: must be the one the cluster runs from'),
});
const RestartBody = z.strictObject({
  node: z.string().min(1).optional(),
  group: z.number().int().min(0).optional(),
  pending: z.boolean().optional(),
});
const ReinitBody = z.strictObject({ node: z.string().min(1) });

type Route = { status: number; body: unknown };

const bad = (error: string): Route => ({ status: 400, body: { error } });

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T | Route {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  const i = r.error.issues[0]!;
  return bad(`${i.path.join('.') || 'body'}: ${i.message}`);
}

export class ConfigService implements Service {
  readonly name = 'config';
  /** One change at a time: a reload during a rolling restart would mix their steps. */
  private busy: string | null = null;

  constructor(private readonly deps: ConfigServiceDeps) {}

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  status(): unknown {
    return { busy: this.busy };
  }

  async handle(method: string, path: string, body: unknown): Promise<Route | null> {
    if (!path.startsWith('/config/')) return null;
    if (method !== 'POST') return { status: 404, body: { error: `no such endpoint ${method} ${path}` } };
    const run = async (what: string, fn: () => Promise<Route>): Promise<Route> => {
      if (this.busy)
        return { status: 409, body: { error: `a ${this.busy} is in progress; try again when it ends` } };
      this.busy = what;
      try {
        return await fn();
      } catch (e) {
        return { status: 409, body: { error: errorMessage(e) } };
      } finally {
        this.busy = null;
      }
    };
    switch (path) {
      case '/config/reload': {
        const b = parseBody(ReloadBody, body);
        if ('status' in b) return b;
        const own = this.deps.cluster.loaded.file;
        if (b.file !== undefined && resolve(b.file) !== resolve(own))
          return {
            status: 409,
            body: {
              error: `the cluster runs from ${own}, not ${b.file}: change that file and reload it`,
              changes: [],
            },
          };
        return run('reload', () => this.applyConfig(b.text, b.dry_run === true));
      }
      case '/config/restart': {
        const b = parseBody(RestartBody, body);
        if ('status' in b) return b;
        return run('restart', async () => ({ status: 200, body: await rollingRestart(this.ctx(), b) }));
      }
      case '/config/reinit': {
        const b = parseBody(ReinitBody, body);
        if ('status' in b) return b;
        return run('reinit', async () => ({ status: 200, body: await reinitNode(this.ctx(), b.node) }));
      }
      default:
        return { status: 404, body: { error: `no such endpoint ${method} ${path}` } };
    }
  }

  private ctx(): RestartContext {
    return { cluster: this.deps.cluster, log: this.deps.log, ha: this.deps.ha() };
  }

  /** Validates, compares, applies (unless dry_run); 400 for an invalid file, 409 when refused. */
  private async applyConfig(text: string | undefined, dryRun: boolean): Promise<Route> {
    const { cluster } = this.deps;
    const file = cluster.loaded.file;
    let next: LoadedConfig;
    try {
      next = text === undefined ? loadConfig(file) : parseConfig(text, file);
    } catch (e) {
      return bad(errorMessage(e));
    }
    const changes = diffConfig(cluster.config, next.config);
    const refused = changes.filter((c) => c.kind === 'refused');
    if (refused.length > 0) {
      return {
        status: 409,
        body: {
          error: `${refused.length} change(s) cannot be applied while the cluster runs; nothing was applied`,
          changes,
        },
      };
    }
    const result: ReloadResult = { dry_run: dryRun, changes, nodes: [], services: [] };
    if (dryRun) return { status: 200, body: result };
    // A reload also renews the certificates about to expire (as `pgscale rotate-certs` does).
    const certificates = await this.renewCertificates();
    if (certificates.length > 0) result.certificates = certificates;
    if (changes.length === 0) return { status: 200, body: result };
    cluster.replaceConfig({ ...next, config: { ...next.config, groups: cluster.config.groups } });
    if (changes.some((c) => c.kind === 'postgres')) result.nodes = await this.reloadNodes();
    if (changes.some((c) => c.kind === 'users')) {
      try {
        await cluster.applyUsers();
      } catch (e) {
        return { status: 500, body: { error: `users and databases: ${errorMessage(e)}`, changes } };
      }
    }
    if (changes.some((c) => c.kind === 'proxy' || c.kind === 'ha' || c.kind === 'users'))
      result.services = await this.deps.reloadServices();
    await this.recordReload(result);
    return { status: 200, body: result };
  }

  /** Certificates of this host that expire within 30 days, renewed and loaded; none without TLS. */
  private async renewCertificates(): Promise<NonNullable<ReloadResult['certificates']>> {
    const { cluster } = this.deps;
    const proxyTls = cluster.config.proxy.tls.cluster_ca && cluster.config.proxy.tls.mode !== 'disable';
    if (!cluster.tls.enabled && !proxyTls) return [];
    try {
      const rotated = await rotateCertificates(cluster, {
        reloadProxy: async () => (await this.deps.reloadServices()).length > 0,
      });
      return rotated
        .filter((c) => c.renewed)
        .map((c) => ({
          what: c.what,
          valid_to: c.after.validTo,
          loaded: c.loaded,
          ...(c.error ? { error: c.error } : {}),
        }));
    } catch (e) {
      return [{ what: 'certificates', valid_to: '', loaded: 'failed', error: errorMessage(e) }];
    }
  }

  /**
   * Renders every node's files from the new config, reloads the running ones and waits until each
   * has read them (pg_conf_load_time moves), then asks each what it takes only at a restart and
   * what it refused (pg_file_settings' errors: an unknown setting, a bad value).
   */
  private async reloadNodes(): Promise<NodeReload[]> {
    const { cluster } = this.deps;
    const running = (await cluster.status()).filter((s) => s.state === 'running');
    const loadTimes = new Map<string, string>();
    for (const s of running) loadTimes.set(s.name, await confLoadTime(cluster, nodeRef(cluster, s.name)));
    for (let g = 0; g < cluster.config.groups.length; g++) await cluster.refreshConf(g);
    const out: NodeReload[] = [];
    for (const s of running) {
      const n = nodeRef(cluster, s.name);
      // A file with an error may be read without moving pg_conf_load_time: its errors show at once.
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && (await confLoadTime(cluster, n)) === loadTimes.get(n.name)) {
        if ((await fileErrors(cluster, n)).length > 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      out.push(
        await withClient(cluster.target(n), async (c) => {
          const pending = await c.query<{ name: string }>(
            'SELECT name FROM pg_settings WHERE pending_restart ORDER BY name',
          );
          return {
            name: n.name,
            group: n.group,
            pending_restart: pending.rows.map((r) => r.name),
            errors: await fileErrors(cluster, n),
          };
        }),
      );
    }
    return out;
  }

  private async recordReload(r: ReloadResult): Promise<void> {
    const ha = this.deps.ha();
    const keys = r.changes.map((c) => c.key).join(', ');
    this.deps.log.info(
      { changes: r.changes.map((c) => c.key), nodes: r.nodes },
      `configuration reloaded: ${keys}`,
    );
    if (!ha) return;
    try {
      await ha.record({ group: -1, event: 'config_reloaded', detail: keys });
      for (const n of r.nodes) {
        if (n.pending_restart.length)
          await ha.record({
            group: n.group,
            event: 'pending_restart',
            node: n.name,
            detail: n.pending_restart.join(', '),
          });
        if (n.errors.length)
          await ha.record({
            group: n.group,
            event: 'config_rejected',
            node: n.name,
            detail: n.errors.join('; '),
          });
      }
    } catch (e) {
      this.deps.log.warn({ err: e }, `the reload could not be written to the history: ${errorMessage(e)}`);
    }
  }
}

export function nodeRef(cluster: Cluster, name: string): NodeRef {
  return cluster.nodes().find((n) => n.name === name)!;
}

async function confLoadTime(cluster: Cluster, n: NodeRef): Promise<string> {
  return withClient(cluster.target(n), async (c) => {
    const r = await c.query<{ t: string }>('SELECT pg_conf_load_time()::text AS t');
    return r.rows[0]!.t;
  }).catch(() => '');
}

/** What PostgreSQL refuses in the node's configuration files (an unknown setting, a bad value). */
async function fileErrors(cluster: Cluster, n: NodeRef): Promise<string[]> {
  return withClient(cluster.target(n), async (c) => {
    const r = await c.query<{ name: string | null; error: string }>(
      // A setting taken only at a start "could not be applied" by a reload: pending, not refused.
      `SELECT name, error FROM pg_file_settings f
        WHERE error IS NOT NULL
          AND NOT (error = 'setting could not be applied'
                   AND EXISTS (SELECT 1 FROM pg_settings s WHERE s.name = f.name AND s.context = 'postmaster'))
        ORDER BY seqno`,
    );
    return r.rows.map((x) => (x.name ? `${x.name}: ${x.error}` : x.error));
  });
}
