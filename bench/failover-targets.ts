/**
 * The clusters the failover benchmark breaks, behind one interface: where applications connect,
 * who the primary is, how to kill it or switch it over, when the cluster is whole again.
 *
 * - pgscale: `pgscale up -c FILE --detach` of `pgscale init`'s template (1 primary + 2 standbys,
 *   default `ha:` settings, `replication.synchronous` off or on), in a temporary directory on a
 *   free block of ports; clients go through pgscale's proxy (`pgscale url`).
 * - Patroni: Debian's patroni (3 members, run as the unprivileged service user) with one etcd
 *   (v3 API) and HAProxy in front, health-checking Patroni's REST API `/primary` — the standard
 *   Patroni deployment, with the settings of Patroni's own example files (ttl 30, loop_wait 10,
 *   retry_timeout 10, use_pg_rewind; HAProxy `inter 3s fall 3 rise 2 on-marked-down
 *   shutdown-sessions`). `synchronous_mode: true` for sync. The "tuned" variant shortens those
 *   timings.
 *
 * Everything started is registered with bench/cleanup.ts, so it goes away on success, failure
 * and Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { cli, repoRoot, tempDir } from '../test/harness.js';
import type { CliResult } from '../test/harness.js';
import { Cluster } from '../src/cluster/cluster.js';
import { runningPid } from '../src/cluster/instance.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { serviceUser } from '../src/cluster/run-as.js';
import type { PgBinaries } from '../src/cluster/binaries.js';
import { parseConfig } from '../src/config/load.js';
import { INIT_DEFAULTS, renderConfig } from '../src/config/template.js';
import { stopController, readControllerFile } from '../src/controller/controller-file.js';
import { onCleanup } from './cleanup.js';
import { startDaemon } from './process.js';
import type { Daemon } from './process.js';
import { LOAD_TABLE, prepareTable } from './failover-load.js';

export type Mode = 'async' | 'sync';

export interface NodeAddr {
  name: string;
  host: string;
  port: number;
}

export interface FailoverTarget {
  /** pgscale, patroni or patroni-tuned. */
  readonly name: string;
  readonly mode: Mode;
  /** Where the application connects (the proxy), as the application user. */
  readonly appUrl: string;
  /** The current primary, or null while there is none (or it is not known). */
  leader(): Promise<NodeAddr | null>;
  /** kill -9 of the primary's postmaster. */
  killPrimary(primary: NodeAddr): void;
  /** A planned switchover away from `primary`; resolves when the command returns. */
  switchover(primary: NodeAddr): Promise<string>;
  /** Resolves once there is a primary with both standbys streaming from it (and one synchronous). */
  waitHealthy(timeoutMs: number): Promise<void>;
  /** Ids of the load table present on `node` (as the superuser), between min and max. */
  storedIds(node: NodeAddr, min: number, max: number): Promise<Set<number>>;
  /** Versions of what runs, for the report. */
  readonly versions: Record<string, string>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`${s}\n`);

export const PATRONI = '/usr/bin/patroni';
export const ETCD = '/usr/bin/etcd';
export const HAPROXY = '/usr/sbin/haproxy';

interface SuperLogin {
  user: string;
  password: string;
  database: string;
}

async function withClient<T>(
  node: { host: string; port: number },
  login: SuperLogin,
  fn: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const c = new pg.Client({ host: node.host, port: node.port, ...login, connectionTimeoutMillis: 3000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Whether `node` is a primary with `standbys` streaming from it (one of them synchronous in sync mode). */
async function streamingFrom(
  node: NodeAddr,
  login: SuperLogin,
  standbys: number,
  mode: Mode,
): Promise<boolean> {
  return withClient(node, login, async (c) => {
    const r = await c.query<{ rec: boolean; streaming: number; sync: number }>(
      `SELECT pg_is_in_recovery() AS rec,
              (SELECT count(*)::int FROM pg_stat_replication WHERE state = 'streaming') AS streaming,
              (SELECT count(*)::int FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')) AS sync`,
    );
    const row = r.rows[0]!;
    return !row.rec && row.streaming >= standbys && (mode === 'async' || row.sync >= 1);
  });
}

async function storedIdsOn(
  node: NodeAddr,
  login: SuperLogin,
  min: number,
  max: number,
): Promise<Set<number>> {
  return withClient(node, login, async (c) => {
    const r = await c.query<{ id: string }>(
      `SELECT id::text AS id FROM ${LOAD_TABLE} WHERE id BETWEEN $1 AND $2`,
      [min, max],
    );
    return new Set(r.rows.map((x) => Number(x.id)));
  });
}

async function waitFor(what: string, timeoutMs: number, fn: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (${last})` : ''}`);
}

export function version(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: 10_000 });
  return (r.stdout || r.stderr || '').split('\n')[0]!.trim() || 'unknown';
}

/** postgres, pg_ctl … as the service user when we are root (PostgreSQL refuses to run as root). */
function asService(): { uid: number; gid: number } | null {
  const u = serviceUser();
  return u ? { uid: u.uid, gid: u.gid } : null;
}

function pgCtlStopImmediate(pgCtl: string, pgdata: string): void {
  if (runningPid(pgdata) === null) return;
  spawnSync(pgCtl, ['stop', '-D', pgdata, '-m', 'immediate', '-w', '-s'], {
    stdio: 'ignore',
    timeout: 30_000,
    ...(asService() ?? {}),
  });
}

// ---------------------------------------------------------------------------------------------
// pgscale

/** Runs bin/pgscale.js on its built dist/ (`npm run bench:failover` builds first), not the sources. */
function pgscaleCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return cli(args, { ...env, PGSCALE_DEV: '' });
}

export async function startPgscale(mode: Mode, bins: PgBinaries): Promise<FailoverTarget> {
  const dir = tempDir('pgscale-bench-failover-');
  const nodes = 3;
  // As test/harness.ts lays it out: proxy, HTTP API, the agents' api ports, then the nodes.
  const base = await findFreePortBlock(2 * nodes + 6);
  const text = renderConfig({
    ...INIT_DEFAULTS,
    name: `bench-failover-${mode}`,
    groups: 1,
    replicas: nodes - 1,
    portBase: base + 4 + nodes,
    proxyPort: base,
    httpPort: base + 1,
  }).replace('synchronous: off', `synchronous: ${mode === 'sync' ? 'on' : 'off'}`);
  const file = join(dir, 'pgscale.yaml');
  writeFileSync(file, text);
  const cluster = new Cluster(parseConfig(text, file), undefined, bins);
  const refs = cluster.nodes();
  const env = { PGSCALE_PG_BIN: bins.dir };
  const pgdatas = refs.map((n) => cluster.paths(n.name).pgdata);
  const destroy = async () => {
    await pgscaleCli(['down', '-c', file], env).catch(() => undefined);
    await stopController(cluster.dataDir, 60_000).catch(() => undefined);
    await cluster.destroy().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  const forget = onCleanup(`pgscale cluster (${mode})`, destroy, () => {
    const info = readControllerFile(cluster.dataDir);
    if (info) {
      try {
        process.kill(info.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const d of pgdatas) pgCtlStopImmediate(bins.pgCtl, d);
    rmSync(dir, { recursive: true, force: true });
  });
  const up = await pgscaleCli(['up', '-c', file, '--detach'], env);
  if (up.code !== 0) throw new Error(`pgscale up failed (${up.code}):\n${up.stderr}${up.stdout}`);
  const url = await pgscaleCli(['url', '-c', file], env);
  if (url.code !== 0) throw new Error(`pgscale url failed:\n${url.stderr}`);
  const appUrl = url.stdout.trim();
  const cfg = cluster.config;
  const login: SuperLogin = {
    user: cfg.postgres.superuser,
    password: cluster.secrets().superuser,
    database: cfg.app.database,
  };
  const byName = (name: string): NodeAddr | null => {
    const n = refs.find((r) => r.name === name);
    return n ? { name: n.name, host: n.host, port: n.port } : null;
  };
  const leader = async (): Promise<NodeAddr | null> => {
    const r = await fetch(`http://127.0.0.1:${cfg.http.port}/ha`, { signal: AbortSignal.timeout(3000) });
    const s = ((await r.json()) as { groups: { leader: string | null }[] }).groups[0];
    return s?.leader ? byName(s.leader) : null;
  };
  await prepareTable(appUrl);
  const target: FailoverTarget = {
    name: 'pgscale',
    mode,
    appUrl,
    leader: () => leader().catch(() => null),
    killPrimary(primary) {
      const pid = runningPid(cluster.paths(primary.name).pgdata);
      if (pid === null) throw new Error(`${primary.name} is not running`);
      process.kill(pid, 'SIGKILL');
    },
    async switchover() {
      const r = await pgscaleCli(['switchover', '-c', file], env);
      if (r.code !== 0) throw new Error(`pgscale switchover failed (${r.code}): ${r.stderr}${r.stdout}`);
      return r.stdout.trim();
    },
    waitHealthy: (timeoutMs) =>
      waitFor(`pgscale (${mode}): a primary with 2 streaming standbys`, timeoutMs, async () => {
        const l = await leader();
        return l !== null && (await streamingFrom(l, login, nodes - 1, mode));
      }),
    storedIds: (node, min, max) => storedIdsOn(node, login, min, max),
    versions: {
      pgscale: (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
        .version,
      postgres: version(join(bins.dir, 'postgres'), ['--version']),
    },
    stop: async () => {
      await destroy();
      forget();
    },
  };
  return target;
}

// ---------------------------------------------------------------------------------------------
// Patroni + etcd + HAProxy

export interface PatroniTimings {
  ttl: number;
  loopWait: number;
  retryTimeout: number;
  /** HAProxy health checks: `inter`, `fall`, `rise`. */
  checkInterMs: number;
  fall: number;
  rise: number;
}

/** Patroni's defaults (and those of its example files, HAProxy's included). */
export const PATRONI_DEFAULTS: PatroniTimings = {
  ttl: 30,
  loopWait: 10,
  retryTimeout: 10,
  checkInterMs: 3000,
  fall: 3,
  rise: 2,
};

/**
 * Short timings within Patroni's rule loop_wait + 2 × retry_timeout ≤ ttl, and HAProxy checks
 * every second (a primary is out after 2 failed checks and in after one good one).
 */
export const PATRONI_TUNED: PatroniTimings = {
  ttl: 10,
  loopWait: 2,
  retryTimeout: 4,
  checkInterMs: 1000,
  fall: 2,
  rise: 1,
};

interface Member {
  name: string;
  pgPort: number;
  apiPort: number;
  pgdata: string;
  config: string;
  daemon: Daemon | null;
}

export function patroniUnavailable(): string | null {
  for (const f of [PATRONI, ETCD, HAPROXY]) {
    const r = spawnSync(f, ['--version'], { encoding: 'utf8', timeout: 20_000 });
    if (r.error || (r.status !== 0 && !/version/i.test(r.stdout + r.stderr))) return `${f} is not runnable`;
  }
  return null;
}

export async function startPatroni(
  mode: Mode,
  bins: PgBinaries,
  variant: { name: string; timings: PatroniTimings },
): Promise<FailoverTarget> {
  const t = variant.timings;
  const user = asService();
  const dir = tempDir('pgscale-bench-failover-patroni-');
  const forgetDir = onCleanup(
    `${variant.name} directory`,
    () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
    () => rmSync(dir, { recursive: true, force: true }),
  );
  const own = (p: string) => {
    mkdirSync(p, { recursive: true, mode: 0o700 });
    if (user) chownSync(p, user.uid, user.gid);
  };
  own(join(dir, 'members'));
  // etcd client+peer, HAProxy, then 3 × (PostgreSQL, REST API).
  const base = await findFreePortBlock(9);
  const etcdUrl = `http://127.0.0.1:${base}`;
  const peer = `http://127.0.0.1:${base + 1}`;
  const proxyPort = base + 2;
  const superPw = 'bench-super';
  const appPw = 'bench-app';
  const scope = `bench-${mode}`;
  const daemons: Daemon[] = [];
  const forgets: (() => void)[] = [];

  // etcd with its default timings (heartbeat 100 ms, election 1 s), as one would run it.
  const etcd = startDaemon({
    name: `${variant.name} etcd`,
    file: ETCD,
    args: [
      '--name=bench',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=bench=${peer}`,
    ],
    logFile: join(dir, 'etcd.log'),
  });
  daemons.push(etcd);
  await waitFor('etcd healthy', 30_000, async () => {
    if (etcd.exited) throw new Error(`etcd exited:\n${etcd.logTail()}`);
    const r = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(1000) });
    return ((await r.json()) as { health?: string }).health === 'true';
  });

  const members: Member[] = [0, 1, 2].map((i) => {
    const name = `m${i}`;
    const mdir = join(dir, 'members', name);
    own(mdir);
    const pgPort = base + 3 + 2 * i;
    const apiPort = base + 4 + 2 * i;
    const pgdata = join(mdir, 'data');
    const conf = {
      scope,
      name,
      restapi: { listen: `127.0.0.1:${apiPort}`, connect_address: `127.0.0.1:${apiPort}` },
      etcd3: { hosts: `127.0.0.1:${base}` },
      bootstrap: {
        dcs: {
          ttl: t.ttl,
          loop_wait: t.loopWait,
          retry_timeout: t.retryTimeout,
          maximum_lag_on_failover: 1048576,
          synchronous_mode: mode === 'sync',
          postgresql: { use_pg_rewind: true, parameters: {} },
        },
        initdb: [{ encoding: 'UTF8' }, 'data-checksums', { locale: 'C' }],
        pg_hba: ['host replication replicator 127.0.0.1/32 md5', 'host all all 127.0.0.1/32 md5'],
      },
      postgresql: {
        listen: `127.0.0.1:${pgPort}`,
        connect_address: `127.0.0.1:${pgPort}`,
        data_dir: pgdata,
        bin_dir: bins.dir,
        pgpass: join(mdir, 'pgpass'),
        authentication: {
          replication: { username: 'replicator', password: 'bench-repl' },
          superuser: { username: 'postgres', password: superPw },
          rewind: { username: 'postgres', password: superPw },
        },
        parameters: { unix_socket_directories: mdir },
      },
      tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
    };
    const config = join(mdir, 'patroni.yml');
    writeFileSync(config, stringify(conf));
    if (user) chownSync(config, user.uid, user.gid);
    return { name, pgPort, apiPort, pgdata, config, daemon: null };
  });

  const startMember = (m: Member) => {
    // If Patroni itself is killed, its PostgreSQL would outlive it: stop that one too (registered
    // first, so it runs after Patroni's own stop).
    forgets.push(
      onCleanup(
        `${variant.name} ${m.name} postgres`,
        () => Promise.resolve(pgCtlStopImmediate(bins.pgCtl, m.pgdata)),
        () => pgCtlStopImmediate(bins.pgCtl, m.pgdata),
      ),
    );
    m.daemon = startDaemon({
      name: `${variant.name} ${m.name}`,
      file: PATRONI,
      args: [m.config],
      logFile: join(dir, 'members', m.name, 'patroni.log'),
      cwd: join(dir, 'members', m.name),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'members', m.name), LANG: 'C.UTF-8' },
      user,
    });
    daemons.push(m.daemon);
  };

  const api = async <T>(
    m: Member,
    path: string,
    init?: RequestInit,
  ): Promise<{ status: number; body: T }> => {
    const r = await fetch(`http://127.0.0.1:${m.apiPort}${path}`, {
      ...init,
      signal: AbortSignal.timeout(init?.method === 'POST' ? 120_000 : 3000),
    });
    const text = await r.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // plain text
    }
    return { status: r.status, body: body as T };
  };

  interface ClusterView {
    members: { name: string; role: string; state: string; port: number; host: string }[];
  }
  const clusterView = async (): Promise<ClusterView | null> => {
    for (const m of members) {
      try {
        const r = await api<ClusterView>(m, '/cluster');
        if (r.status === 200 && Array.isArray(r.body.members)) return r.body;
      } catch {
        // try the next member
      }
    }
    return null;
  };
  const leader = async (): Promise<NodeAddr | null> => {
    const v = await clusterView();
    const l = v?.members.find((x) => x.role === 'leader' && x.state === 'running');
    return l ? { name: l.name, host: '127.0.0.1', port: l.port } : null;
  };
  const login: SuperLogin = { user: 'postgres', password: superPw, database: 'app' };

  const stopAll = async () => {
    await Promise.all(daemons.filter((d) => d !== etcd).map((d) => d.stop()));
    for (const m of members) pgCtlStopImmediate(bins.pgCtl, m.pgdata);
    for (const f of forgets) f();
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
    forgetDir();
  };

  try {
    startMember(members[0]!);
    await waitFor(`${variant.name}: ${members[0]!.name} bootstrapped as the leader`, 120_000, async () => {
      if (members[0]!.daemon?.exited) throw new Error(`patroni exited:\n${members[0]!.daemon.logTail(30)}`);
      return (await api(members[0]!, '/primary')).status === 200;
    });
    startMember(members[1]!);
    startMember(members[2]!);
    const haproxyCfg = join(dir, 'haproxy.cfg');
    const servers = members
      .map((m) => `    server ${m.name} 127.0.0.1:${m.pgPort} maxconn 100 check port ${m.apiPort}`)
      .join('\n');
    // Patroni's example haproxy.cfg (without the stats page), on our ports.
    writeFileSync(
      haproxyCfg,
      `global
    maxconn 100

defaults
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 4s
    timeout server 30m
    timeout check 5s

listen primary
    bind 127.0.0.1:${proxyPort}
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter ${t.checkInterMs}ms fall ${t.fall} rise ${t.rise} on-marked-down shutdown-sessions
${servers}
`,
    );
    const haproxy = startDaemon({
      name: `${variant.name} haproxy`,
      file: HAPROXY,
      args: ['-f', haproxyCfg, '-db'],
      logFile: join(dir, 'haproxy.log'),
    });
    daemons.push(haproxy);
    await waitFor(`${variant.name} (${mode}): 3 members, 2 standbys streaming`, 180_000, async () => {
      for (const m of members)
        if (m.daemon?.exited) throw new Error(`patroni ${m.name} exited:\n${m.daemon.logTail(30)}`);
      const l = await leader();
      return l !== null && (await streamingFrom(l, { ...login, database: 'postgres' }, 2, mode));
    });
    // The application's role and database, as pgscale up creates them.
    const superUrl = `postgresql://postgres:${superPw}@127.0.0.1:${proxyPort}/postgres`;
    await waitFor(`${variant.name}: HAProxy routing to the primary`, 60_000, async () => {
      const c = new pg.Client({ connectionString: superUrl, connectionTimeoutMillis: 3000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        const r = await c.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec');
        if (r.rows[0]!.rec) return false;
        await c.query(`CREATE ROLE app LOGIN PASSWORD '${appPw}'`).catch((e: { code?: string }) => {
          if (e.code !== '42710') throw e;
        });
        await c.query('CREATE DATABASE app OWNER app').catch((e: { code?: string }) => {
          if (e.code !== '42P04') throw e;
        });
        return true;
      } finally {
        await c.end().catch(() => undefined);
      }
    });
  } catch (e) {
    await stopAll();
    throw e;
  }
  const appUrl = `postgresql://app:${appPw}@127.0.0.1:${proxyPort}/app`;
  await prepareTable(appUrl);
  log(
    `${variant.name} (${mode}): members on ports ${members.map((m) => m.pgPort).join(', ')}, HAProxy ${proxyPort}`,
  );

  return {
    name: variant.name,
    mode,
    appUrl,
    leader: () => leader().catch(() => null),
    killPrimary(primary) {
      const m = members.find((x) => x.name === primary.name)!;
      const pid = runningPid(m.pgdata);
      if (pid === null) throw new Error(`${m.name}'s PostgreSQL is not running`);
      process.kill(pid, 'SIGKILL');
    },
    async switchover(primary) {
      const m = members.find((x) => x.name === primary.name)!;
      const r = await api<unknown>(m, '/switchover', {
        method: 'POST',
        body: JSON.stringify({ leader: primary.name }),
        headers: { 'content-type': 'application/json' },
      });
      const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
      if (r.status !== 200) throw new Error(`Patroni switchover: HTTP ${r.status} ${text}`);
      return text.trim();
    },
    waitHealthy: (timeoutMs) =>
      waitFor(`${variant.name} (${mode}): a leader with 2 streaming standbys`, timeoutMs, async () => {
        const v = await clusterView();
        if (!v || v.members.length !== 3 || v.members.some((x) => x.state !== 'running')) return false;
        const l = await leader();
        return l !== null && (await streamingFrom(l, login, 2, mode));
      }),
    storedIds: (node, min, max) => storedIdsOn(node, login, min, max),
    versions: {
      patroni: version(PATRONI, ['--version']),
      etcd: version(ETCD, ['--version']),
      haproxy: version(HAPROXY, ['-v']),
      postgres: version(join(bins.dir, 'postgres'), ['--version']),
    },
    stop: stopAll,
  };
}
