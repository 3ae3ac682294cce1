/**
 * Proxy test harness: one real PostgreSQL (through the cluster code) and a pgscale proxy in this
 * process in front of it, on free ports; clients connect through the proxy with real drivers.
 */
import pg from 'pg';
import { parseConfig } from '../src/config/load.js';
import type { ProxyConfig } from '../src/config/schema.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { databasesResolver } from '../src/proxy/resolver.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { binarySets, makeCluster } from './harness.js';
import type { TestCluster } from './harness.js';

export interface ProxyFixture {
  tc: TestCluster;
  proxy: ProxyServer;
  port: number;
  serverPort: number;
  appPassword: string;
  superPassword: string;
  client(opts?: Partial<pg.ClientConfig>): Promise<pg.Client>;
  direct(opts?: Partial<pg.ClientConfig>): Promise<pg.Client>;
  /** The admin console (database pgscale) as the superuser. */
  admin(): Promise<pg.Client>;
  restartProxy(overrides: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

export function proxyConfig(
  serverPort: number,
  port: number,
  overrides: Record<string, unknown> = {},
  replicaPorts: number[] = [],
): ProxyConfig {
  const yaml = JSON.stringify({
    proxy: {
      listen: '127.0.0.1',
      port,
      default_pool_size: 4,
      admin_users: ['postgres'],
      stats_users: ['app'],
      // Several tests reach the server through the proxy as the superuser (PgBouncer-style).
      allow_superuser: true,
      server_check_delay: 0,
      databases: {
        app: {
          host: '127.0.0.1',
          port: serverPort,
          replicas: replicaPorts.map((p) => ({ host: '127.0.0.1', port: p })),
        },
        postgres: { host: '127.0.0.1', port: serverPort },
      },
      ...overrides,
    },
  });
  return parseConfig(yaml, '/proxy-test.yaml').config.proxy;
}

export async function startProxyFixture(
  overrides: Record<string, unknown> = {},
  pgParameters: Record<string, string | number> = {},
  replicas = 0,
): Promise<ProxyFixture> {
  const bins = binarySets()[0]!;
  const params = Object.entries({ max_connections: 200, ...pgParameters })
    .map(([k, v]) => `    ${k}: ${typeof v === 'number' ? v : JSON.stringify(v)}`)
    .join('\n');
  const tc = await makeCluster(bins, {
    replicas,
    extra: (t) => t.replace('  parameters: {}', `  parameters:\n${params}`),
  });
  await tc.cluster.up();
  const secrets = readSecrets(tc.cluster.dataDir)!;
  const serverPort = tc.cluster.nodes()[0]!.port;
  const port = await findFreePortBlock(1);
  const inline = new Map([
    ['app', secrets.app],
    ['postgres', secrets.superuser],
  ]);
  let proxy = new ProxyServer({
    config: proxyConfig(serverPort, port, overrides),
    resolve: () => null,
    inlineUsers: inline,
    loginBackoff: false,
  });
  const start = async (o: Record<string, unknown>) => {
    const cfg = proxyConfig(
      serverPort,
      port,
      o,
      tc.cluster
        .nodes()
        .slice(1)
        .map((n) => n.port),
    );
    // Tests fail logins on purpose, all from 127.0.0.1: the back-off has its own test file.
    proxy = new ProxyServer({
      config: cfg,
      resolve: databasesResolver(cfg),
      inlineUsers: inline,
      loginBackoff: false,
    });
    await proxy.start();
  };
  await start(overrides);
  const fx: ProxyFixture = {
    tc,
    get proxy() {
      return proxy;
    },
    port,
    serverPort,
    appPassword: secrets.app,
    superPassword: secrets.superuser,
    async client(opts = {}) {
      const c = new pg.Client({
        host: '127.0.0.1',
        port,
        user: 'app',
        password: secrets.app,
        database: 'app',
        ...opts,
      });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    },
    async direct(opts = {}) {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: serverPort,
        user: 'postgres',
        password: secrets.superuser,
        database: 'app',
        ...opts,
      });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    },
    async admin() {
      const c = new pg.Client({
        host: '127.0.0.1',
        port,
        user: 'postgres',
        password: secrets.superuser,
        database: 'pgscale',
      });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    },
    async restartProxy(o) {
      await proxy.stop();
      await start(o);
    },
    async close() {
      await proxy.stop();
      await tc.cleanup();
    },
  };
  return fx;
}

/**
 * libpq's environment for a psql run against `port` as the app user: the caller's own PG*
 * variables removed (they would override), everything else kept (PATH, locale).
 */
export function appLibpqEnv(
  port: number,
  password: string,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) e[k] = v;
  return {
    ...e,
    PGHOST: '127.0.0.1',
    PGPORT: String(port),
    PGUSER: 'app',
    PGDATABASE: 'app',
    PGPASSWORD: password,
    PGCONNECT_TIMEOUT: '20',
    ...extra,
  };
}

/**
 * One more proxy in front of the fixture's servers (another pool mode or size), app user only;
 * `withReplicas` puts the fixture's standbys in its read set. The caller stops it.
 */
export async function startAppProxy(
  fx: ProxyFixture,
  overrides: Record<string, unknown>,
  withReplicas = false,
): Promise<{ proxy: ProxyServer; port: number }> {
  const port = await findFreePortBlock(1);
  const replicas = withReplicas
    ? fx.tc.cluster
        .nodes()
        .slice(1)
        .map((n) => n.port)
    : undefined;
  const cfg = proxyConfig(fx.serverPort, port, overrides, replicas);
  const proxy = new ProxyServer({
    config: cfg,
    resolve: databasesResolver(cfg),
    inlineUsers: new Map([['app', fx.appPassword]]),
    loginBackoff: false,
  });
  await proxy.start();
  return { proxy, port };
}
