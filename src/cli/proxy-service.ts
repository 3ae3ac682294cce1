/**
 * The proxy as a controller service inside `pgscale up`: one endpoint on proxy.port in front of
 * the cluster's groups, each database's sessions going to its home group's primary (group 0
 * unless databases: or groups[].databases says otherwise). It knows the passwords of the roles
 * pgscale made (the application users of app: and users:, the superuser), finds every other
 * login role with the auth lookup (bootstrap-users.ts: PgBouncer's auth_query, SCRAM
 * pass-through to the server), applies the users' and databases' pool settings, serves the
 * application databases (and the ones proxy.exposed_databases adds), follows the topology the cluster
 * publishes, and exports its gauges to the controller's /metrics. It owns its proxy: SHUTDOWN on
 * the admin console is refused, and a listener that stops for any other reason is noticed,
 * logged and started again.
 */
import { portInUse } from '../cluster/ports.js';
import { ClusterTls, proxyWithClusterCert, proxyWithClusterTls } from '../cluster/tls.js';
import { ConfigError, ErrorCodes, PgscaleError, errorMessage } from '../errors.js';
import type { Registry } from 'prom-client';
import type { Cluster } from '../cluster/cluster.js';
import type { LoadedConfig } from '../config/load.js';
import { homeGroup, loadConfig } from '../config/load.js';
import type { ProxyConfig } from '../config/schema.js';
import type { Service } from '../controller/service.js';
import type { Logger } from '../obs/logger.js';
import { ProxyServer } from '../proxy/proxy-server.js';
import type { DatabaseResolver, ShardingHost } from '../proxy/proxy-server.js';
import type { AdminHooks } from '../proxy/admin-view.js';
import { databasesResolver, topologyResolver } from '../proxy/resolver.js';
import type { Topology } from '../topology/topology.js';
import { TopologyView } from '../topology/topology.js';
import { registerProxyMetrics } from './proxy-metrics.js';
import { AUTH_DBNAME, AUTH_QUERY } from '../cluster/bootstrap-users.js';
import type { Secrets } from '../cluster/secrets.js';
import { userPasswords } from '../cluster/user-secrets.js';
import { AUTH_ROLE, appDatabases, appUsers } from '../config/users.js';
import type { UserSettingsTable } from '../proxy/user-settings.js';

const RESTART_FIRST_MS = 1000;
const RESTART_MAX_MS = 10_000;

/** The cluster's current topology as its data directories describe it (HA will publish its own). */
export function clusterTopology(cluster: Cluster, epoch: number): Topology {
  return {
    epoch,
    groups: cluster.config.groups.map((_, group) => {
      const primary = cluster.primaryOf(group);
      return {
        primary: primary ? { name: primary.name, host: primary.host, port: primary.port } : null,
        replicas: cluster
          .nodes()
          .filter((n) => n.group === group && n.name !== primary?.name)
          .map((n) => ({ name: n.name, host: n.host, port: n.port })),
      };
    }),
  };
}

/**
 * The proxy section as the proxy takes it. Nobody is an admin of the console unless listed in
 * proxy.admin_users (`pgscale init` lists the superuser there, visibly); being the cluster's
 * superuser grants nothing on its own. proxy.workers above 1 is refused: here the proxy shares
 * its process with the sharding state (shard holds, two-phase commits, global tables), which
 * several processes would each keep apart; it is for the standalone `pgscale proxy` (and
 * `--cluster`, where each worker is a proxy of its own: `workers`) for now.
 * With cluster.tls on, the proxy verifies the nodes with the cluster CA (tls.ts,
 * proxyWithClusterTls); with proxy.tls.cluster_ca it presents a certificate from that CA
 * (proxyWithClusterCert).
 */
export function proxyConfigFor(loaded: LoadedConfig, workers = false): ProxyConfig {
  const p = loaded.config.proxy;
  if (p.enabled && p.workers !== 1 && !workers) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `${loaded.file}: proxy.workers: ${p.workers} is for the standalone \`pgscale proxy\` for now; ` +
        '`pgscale up` runs its proxy in the controller process: set proxy.workers to 1 (or remove it)',
    );
  }
  const tls = new ClusterTls(loaded);
  const cfg = proxyWithClusterCert(proxyWithClusterTls(p, tls.enabled ? tls.trustFile : null), tls);
  // Roles created later in PostgreSQL log in through pgscale's own auth lookup (bootstrap-users.ts)
  // unless the operator set an auth_query of their own.
  return cfg.auth_query !== null
    ? cfg
    : { ...cfg, auth_query: AUTH_QUERY, auth_user: AUTH_ROLE, auth_dbname: cfg.auth_dbname ?? AUTH_DBNAME };
}

/** The users the proxy knows the passwords of (the superuser, the auth role, the config's users). */
export function inlineUsers(loaded: LoadedConfig, secrets: Secrets): Map<string, string> {
  const inline = userPasswords(loaded, secrets);
  inline.set(loaded.config.postgres.superuser, secrets.superuser);
  if (secrets.auth !== undefined && loaded.config.proxy.auth_query === null)
    inline.set(AUTH_ROLE, secrets.auth);
  return inline;
}

/** The config's per-user pool settings, for the proxy. */
export function userSettings(loaded: LoadedConfig): UserSettingsTable {
  return new Map(
    appUsers(loaded.config).map((u) => [
      u.name,
      {
        maxUserConnections: u.maxUserConnections,
        ...(u.poolSize !== undefined ? { poolSize: u.poolSize } : {}),
        ...(u.poolMode !== undefined ? { poolMode: u.poolMode } : {}),
      },
    ]),
  );
}

/**
 * The cluster's databases the proxy serves: the application's and those the config adds (in
 * proxy.exposed_databases, or as the home of a group in groups[].databases).
 */
export function servedDatabases(loaded: LoadedConfig): string[] {
  const c = loaded.config;
  return [
    ...new Set([
      ...appDatabases(c).map((d) => d.name),
      ...c.proxy.exposed_databases,
      ...c.groups.flatMap((g) => g.databases),
    ]),
  ];
}

/** Fails naming proxy.port when something else listens there; nothing is started. */
export async function checkProxyPort(loaded: LoadedConfig): Promise<void> {
  proxyConfigFor(loaded);
  const { enabled, listen, port } = loaded.config.proxy;
  if (enabled && (await portInUse(port, listen))) {
    throw new PgscaleError(
      ErrorCodes.PORT_IN_USE,
      `port ${port} of the proxy (proxy.port, on ${listen}) is already in use by another process; ` +
        `stop it or choose another proxy.port in ${loaded.file}`,
    );
  }
}

export class ProxyService implements Service {
  readonly name = 'proxy';
  private proxy: ProxyServer | null = null;
  private unsubscribe: (() => void) | null = null;
  readonly view: TopologyView;

  /**
   * `view`: the topology high availability publishes; without one (HA disabled) the proxy
   * publishes the data directories' view once at start.
   */
  constructor(
    private readonly loaded: LoadedConfig,
    private readonly cluster: Cluster,
    private readonly logger: Logger,
    registry: Registry,
    view?: TopologyView,
    /** The application database's sharding (pgscale up), when the controller runs it. */
    private readonly sharding: () => ShardingHost | null = () => null,
    /** A CancelRequest for another proxy's client (several proxies: cluster-proxy.ts). */
    private readonly forwardCancel?: (processId: number, key: Buffer) => void,
    /**
     * A worker of `pgscale proxy --cluster` with proxy.workers (cluster-proxy.ts): its console's
     * SHOW, PAUSE, RESUME, KILL and RELOAD go over every worker; proxy.workers is taken.
     */
    private readonly worker: { adminHooks?: AdminHooks; workers?: boolean } = {},
  ) {
    this.view = view ?? new TopologyView();
    this.ownsTopology = view === undefined;
    registerProxyMetrics(registry, () => this.proxy);
  }

  private readonly ownsTopology: boolean;

  /** The running proxy (null between a stop and a restart). */
  get server(): ProxyServer | null {
    return this.proxy;
  }

  private configFor(loaded: LoadedConfig): ProxyConfig {
    return proxyConfigFor(loaded, this.worker.workers === true);
  }
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;
  /** Times the listener was opened again after it closed unasked. */
  private restarts = 0;
  private lastRestart: string | null = null;
  private issue: string | null = null;

  async preflight(): Promise<void> {
    await checkProxyPort(this.loaded);
  }

  async start(): Promise<void> {
    // Services start after the cluster is up, so the data directories now say who is primary.
    if (this.ownsTopology) this.publishClusterTopology();
    this.stopping = false;
    const holdMs = this.loaded.config.ha.proxy_hold_timeout * 1000;
    const a = await this.launch();
    this.unsubscribe = this.view.subscribe((t, prev) => {
      // Every group is followed on its own: a failover of one leaves the others' pools alone.
      t.groups.forEach((s, group) => {
        const p = prev.groups[group];
        const same =
          s.primary?.name === p?.primary?.name &&
          JSON.stringify(s.replicas.map((r) => r.name)) ===
            JSON.stringify(p?.replicas.map((r) => r.name) ?? []);
        if (same) return;
        this.logger.info(
          {
            epoch: t.epoch,
            group,
            group_epoch: s.epoch ?? null,
            primary: s.primary?.name ?? null,
            replicas: s.replicas.map((r) => r.name),
          },
          s.primary
            ? `group ${group}: routing writes to ${s.primary.name}`
            : `group ${group}: no primary: holding new transactions`,
        );
        this.proxy?.followGroup(group, s.primary, s.replicas, holdMs);
      });
    });
    this.logger.info({ host: a.host, port: a.port }, 'proxy ready');
  }

  /**
   * Without high availability nobody else publishes the topology: the data directories' view,
   * at start and at every reload (add-replica and remove-replica make the controller re-read the
   * nodes, then reload its services: their node reaches or leaves the read sets here). The epoch
   * moves only when a primary changed.
   */
  /**
   * The controller re-read the nodes (add-group, add-replica…): without high availability the
   * new topology is published now, before the services reload (the sharding service's reload
   * takes a new group in and needs its primary). With HA, HA's own reload publishes it.
   */
  membersChanged(): void {
    if (this.ownsTopology && this.proxy) this.publishClusterTopology();
  }

  private publishClusterTopology(): void {
    const now = this.view.current();
    const next = clusterTopology(this.cluster, now.epoch);
    const primaries = (t: Topology) => JSON.stringify(t.groups.map((g) => g.primary?.name ?? null));
    this.view.publish(
      now.groups.length > 0 && primaries(next) === primaries(now) ? next : { ...next, epoch: now.epoch + 1 },
    );
  }

  /** A new ProxyServer, listening. */
  private async launch(): Promise<{ host: string; port: number }> {
    const cfg = this.configFor(this.loaded);
    const proxy = new ProxyServer({
      config: cfg,
      resolve: this.resolverFor(this.loaded),
      inlineUsers: inlineUsers(this.loaded, this.cluster.secrets()),
      users: userSettings(this.loaded),
      log: (line) => this.logger.info(line),
      logger: this.logger,
      onListenerClosed: (why) => this.onListenerClosed(proxy, why),
      ...(this.forwardCancel ? { forwardCancel: this.forwardCancel } : {}),
      ...(this.sharding() ? { sharding: this.sharding()! } : {}),
      adminHooks: {
        reload: () => this.reload(),
        refuseShutdown: (who) => {
          this.logger.warn(
            { event: 'admin_shutdown_refused', user: who.user, client: who.addr },
            `SHUTDOWN on the admin console refused (user ${who.user} from ${who.addr}): the controller owns the proxy`,
          );
          return 'SHUTDOWN is refused: this proxy belongs to the pgscale controller; `pgscale down` stops the cluster and its proxy';
        },
        ...this.worker.adminHooks,
      },
    });
    if (!this.ownsTopology) proxy.holdOnUnreachableMs = this.loaded.config.ha.proxy_hold_timeout * 1000;
    this.proxy = proxy;
    return proxy.start();
  }

  /**
   * The listener closed. Unless this service is stopping, that was not supposed to happen (the
   * controller owns the proxy): log it, report it (status, /services, /health) and listen again,
   * retrying with a growing delay while the port cannot be had.
   */
  private onListenerClosed(proxy: ProxyServer, why: 'stopped' | 'closed'): void {
    if (this.stopping || proxy !== this.proxy) return;
    const where = `${proxy.settings.listen}:${proxy.settings.port}`;
    this.issue = `the proxy stopped listening on ${where} at ${new Date().toISOString()} (${why}); restarting it`;
    this.logger.error(
      { event: 'proxy_listener_closed', listen: where, why },
      `the proxy stopped listening on ${where} without being asked (${why}); restarting it`,
    );
    this.scheduleRestart(RESTART_FIRST_MS);
  }

  private scheduleRestart(delayMs: number): void {
    if (this.restartTimer) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      void this.restart(delayMs);
    }, delayMs);
    this.restartTimer.unref();
  }

  private async restart(delayMs: number): Promise<void> {
    const old = this.proxy;
    if (this.stopping || !old) return;
    const where = `${old.settings.listen}:${old.settings.port}`;
    try {
      // A proxy that was stopped has closed its pools: start a new one; otherwise only the
      // listener is gone and the clients connected through it carry on.
      if (old.isStopped) await this.launch();
      else await old.listen();
      this.restarts++;
      this.lastRestart = new Date().toISOString();
      this.issue = null;
      this.logger.warn(
        { event: 'proxy_restarted', listen: where, restarts: this.restarts },
        `the proxy listens on ${where} again (restart ${this.restarts})`,
      );
    } catch (err) {
      const next = Math.min(delayMs * 2, RESTART_MAX_MS);
      this.issue = `the proxy is not listening on ${where}: ${errorMessage(err)}; retrying every ${next / 1000} s`;
      this.logger.error(
        { event: 'proxy_restart_failed', listen: where, err },
        `the proxy could not listen on ${where} again: ${errorMessage(err)}; retrying in ${next / 1000} s`,
      );
      this.scheduleRestart(next);
    }
  }

  /** What keeps the proxy from serving now (the controller reports it), or null. */
  problem(): string | null {
    return this.issue;
  }

  /** Re-reads pgscale.yaml's proxy section (SIGHUP, or RELOAD on the admin console). */
  reload(): Promise<string[]> {
    const p = this.proxy;
    if (!p) return Promise.resolve([]);
    const next = loadConfig(this.loaded.file);
    const restart = p.reload(this.configFor(next), this.resolverFor(next), {
      settings: userSettings(next),
      inline: inlineUsers(next, this.cluster.secrets()),
    });
    if (this.ownsTopology) this.publishClusterTopology();
    return Promise.resolve(restart);
  }

  /**
   * Where a database's sessions go under `loaded`: proxy.databases if it names it, else the
   * primary of its home group (the same at start and at every reload: a reload that forgot the
   * homes sent every database to group 0).
   */
  private resolverFor(loaded: LoadedConfig): DatabaseResolver {
    const cfg = this.configFor(loaded);
    const explicit = Object.keys(cfg.databases).length > 0 ? databasesResolver(cfg) : undefined;
    const base = topologyResolver(this.view, servedDatabases(loaded), explicit, (db) =>
      homeGroup(loaded.config, db),
    );
    // The pool settings of databases: (a user's own override them: user-settings.ts).
    const pools = new Map(appDatabases(loaded.config).map((d) => [d.name, d]));
    return (db) => {
      const t = base(db);
      const d = pools.get(db);
      if (!t || !d || t.followsTopology !== true) return t;
      return {
        ...t,
        ...(d.poolSize !== undefined ? { poolSize: d.poolSize } : {}),
        ...(d.poolMode !== undefined ? { poolMode: d.poolMode } : {}),
      };
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    const p = this.proxy;
    this.proxy = null;
    if (p) await p.stop();
  }

  status(): unknown {
    const p = this.proxy;
    if (!p) return { running: false };
    const t = this.view.current();
    return {
      running: true,
      listening: p.listening,
      listen: `${p.settings.listen}:${p.settings.port}`,
      restarts: this.restarts,
      last_restart: this.lastRestart,
      problem: this.issue,
      pool_mode: p.settings.pool_mode,
      clients: p.clients.size,
      pools: [...p.pools.values()].map((pool) => ({
        database: pool.database,
        user: pool.target.user,
        server: `${pool.target.host}:${pool.target.port}`,
        active: pool.active.size,
        idle: pool.idle.length,
        waiting: pool.waiting,
      })),
      topology: {
        epoch: t.epoch,
        primaries: t.groups.map((s) => s.primary?.name ?? null),
        // What the read routers follow (add-replica waits until its node is here).
        replicas: t.groups.map((s) => s.replicas.map((r) => r.name)),
      },
    };
  }
}
