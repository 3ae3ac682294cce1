/**
 * The clusters `npm run bench:failover -- --hosts` breaks: three network-namespace hosts
 * (test/netns-hosts.ts), a 3-member etcd with one member per host (test/netns-etcd-cluster.ts,
 * the tests' timings: heartbeat 50 ms, election 500 ms), and one PostgreSQL node per host on the
 * host's own address, port 5432, synchronous replication — managed either by
 *
 * - `pgscale agent` on each host (as test/multi-host.test.ts starts them), with `ha.ttl` left at
 *   its default or set, every other `ha:` setting at its default; or
 * - Patroni on each host (Debian's `patroni`, as the PostgreSQL service user, `etcd3:` with the
 *   three members), `synchronous_mode: true`, `use_pg_rewind`, data checksums, with the given
 *   ttl / loop_wait / retry_timeout.
 *
 * Everything lives in the namespaces and the run's directory: `NetHosts.destroy()` (registered
 * with bench/cleanup.ts, and NetHosts' own exit hook) kills every process and removes it all.
 */
import { copyFileSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { repoRoot } from '../test/harness.js';
import { startEtcd } from '../test/netns-etcd-cluster.js';
import type { EtcdCluster } from '../test/netns-etcd-cluster.js';
import { NetHosts } from '../test/netns-hosts.js';
import type { Host } from '../test/netns-hosts.js';
import { serviceUser } from '../src/cluster/run-as.js';
import type { PgBinaries } from '../src/cluster/binaries.js';
import { onCleanup } from './cleanup.js';
import { PATRONI, version } from './failover-targets.js';

export const PG_PORT = 5432;
const PATRONI_API_PORT = 8008;
export const ACK_TABLE = 'host_acks';

export interface Login {
  user: string;
  password: string;
  database: string;
}

export interface HostTarget {
  /** e.g. pgscale, pgscale-ttl6, patroni, patroni-ttl6. */
  readonly name: string;
  /** The HA timings, for the report. */
  readonly settings: string;
  readonly net: NetHosts;
  readonly etcd: EtcdCluster;
  readonly login: Login;
  /** After host.kill(): the host's etcd member and its agent (or Patroni) start again. */
  restartHost(h: Host): Promise<void>;
  readonly versions: Record<string, string>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function connectTo(h: Host, login: Login, timeoutMs: number, queryTimeoutMs?: number) {
  const c = new pg.Client({
    host: h.addr,
    port: PG_PORT,
    ...login,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: queryTimeoutMs ?? timeoutMs * 4,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
  } catch (e) {
    await c.end().catch(() => undefined);
    throw e;
  }
  return c;
}

export type Role = 'primary' | 'standby' | null;

/** What each host's PostgreSQL says it is now (null: does not answer within 500 ms). */
export async function roles(t: HostTarget): Promise<Map<Host, Role>> {
  const out = new Map<Host, Role>();
  await Promise.all(
    t.net.hosts.map(async (h) => {
      let c: pg.Client | null = null;
      try {
        c = await connectTo(h, t.login, 500);
        const r = await c.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec');
        out.set(h, r.rows[0]!.rec ? 'standby' : 'primary');
      } catch {
        out.set(h, null);
      } finally {
        await c?.end().catch(() => undefined);
      }
    }),
  );
  return out;
}

/** The one primary, when every other host streams from it (one synchronously); else null. */
export async function wholePrimary(t: HostTarget): Promise<Host | null> {
  const r = await roles(t);
  const p = [...r].filter(([, v]) => v === 'primary').map(([h]) => h);
  if (p.length !== 1) return null;
  const c = await connectTo(p[0]!, t.login, 1000);
  try {
    const q = await c.query<{ streaming: number; sync: number }>(
      `SELECT count(*) FILTER (WHERE state = 'streaming')::int AS streaming,
              count(*) FILTER (WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum'))::int AS sync
         FROM pg_stat_replication`,
    );
    const row = q.rows[0]!;
    return row.streaming >= t.net.hosts.length - 1 && row.sync >= 1 ? p[0]! : null;
  } finally {
    await c.end().catch(() => undefined);
  }
}

export async function waitFor<T>(what: string, ms: number, f: () => Promise<T | null>): Promise<T> {
  const until = Date.now() + ms;
  let last = '';
  for (;;) {
    try {
      const v = await f();
      if (v !== null) return v;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > until)
      throw new Error(`timed out after ${ms / 1000} s waiting for ${what}${last ? ` (${last})` : ''}`);
    await sleep(200);
  }
}

/** Hosts, etcd and the run's cleanup, shared by both kinds of target. */
async function hostsWithEtcd(
  prefix: string,
): Promise<{ net: NetHosts; etcd: EtcdCluster; forget: () => void }> {
  const net = await NetHosts.create({ hosts: 3, prefix });
  const forget = onCleanup(
    `network namespaces ${net.run}`,
    () => net.destroy(),
    () => net.destroySync(),
  );
  try {
    const etcd = await startEtcd(net, net.hosts);
    return { net, etcd, forget };
  } catch (e) {
    await net.destroy();
    forget();
    throw e;
  }
}

async function createAckTable(t: HostTarget): Promise<void> {
  const p = await waitFor('a whole cluster', 180_000, () => wholePrimary(t));
  const c = await connectTo(p, t.login, 2000);
  try {
    await c.query(`CREATE TABLE IF NOT EXISTS ${ACK_TABLE} (id bigint PRIMARY KEY)`);
  } finally {
    await c.end();
  }
}

// ---------------------------------------------------------------------------------------------
// pgscale agents

/** `ttlS` undefined: the documented default (10 s). */
export async function startPgscaleHosts(name: string, bins: PgBinaries, ttlS?: number): Promise<HostTarget> {
  const { net, etcd, forget } = await hostsWithEtcd('pgfb');
  const file = join(net.dir, 'pgscale.yaml');
  const dataDir = (h: Host) => join(net.dir, `data-${h.index}`);
  const nodes = net.hosts
    .map((h) => `      - { name: n${h.index}, host: ${h.addr}, port: ${PG_PORT} }`)
    .join('\n');
  writeFileSync(
    file,
    `cluster:
  name: bench
  id: bench-hosts-${process.pid}
  data_dir: ./data
postgres:
  client_networks: [${net.net}.0/24]
replication:
  networks: [${net.net}.0/24]
  synchronous: 'on'
ha:
  store: etcd
  etcd:
    endpoints: [${etcd.endpoints.join(', ')}]
  # agents are killed: on a host with a watchdog that would reset it
  watchdog:
    mode: 'off'
${ttlS === undefined ? '' : `  ttl: ${ttlS}\n`}proxy:
  enabled: false
groups:
  - nodes:
${nodes}
`,
  );
  const startAgent = (h: Host) => {
    h.spawn(
      process.execPath,
      [join(repoRoot, 'bin/pgscale.js'), 'agent', '-c', file, '--host', h.addr, '--data-dir', dataDir(h)],
      { env: { PGSCALE_PG_BIN: bins.dir }, logFile: join(net.dir, `agent-${h.index}.log`) },
    );
  };
  const stop = async () => {
    await net.destroy();
    forget();
  };
  try {
    for (const h of net.hosts) mkdirSync(dataDir(h), { mode: 0o755 });
    // The first host creates the cluster's passwords; the others get a copy, as an operator does.
    const [h1, ...rest] = net.hosts;
    startAgent(h1!);
    const secrets = join(dataDir(h1!), 'secrets.json');
    await waitFor('the first host to create the cluster', 120_000, () =>
      Promise.resolve(readFileSync(secrets, 'utf8') ? true : null),
    );
    const password = (JSON.parse(readFileSync(secrets, 'utf8')) as { superuser: string }).superuser;
    for (const h of rest) {
      copyFileSync(secrets, join(dataDir(h), 'secrets.json'));
      startAgent(h);
    }
    const t: HostTarget = {
      name,
      settings: `ha.ttl ${ttlS ?? 10}${ttlS === undefined ? ' (default)' : ''}, loop_wait 0.25 (default)`,
      net,
      etcd,
      login: { user: 'postgres', password, database: 'app' },
      async restartHost(h) {
        await etcd.member(h).start();
        startAgent(h);
      },
      versions: {
        pgscale: (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
          .version,
        postgres: version(join(bins.dir, 'postgres'), ['--version']),
        etcd: version('/usr/bin/etcd', ['--version']),
      },
      stop,
    };
    await createAckTable(t);
    return t;
  } catch (e) {
    await stop();
    throw new Error(`${name}: ${e instanceof Error ? e.message : String(e)}; logs were in ${net.dir}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Patroni

export interface PatroniHostTimings {
  ttl: number;
  loopWait: number;
  retryTimeout: number;
}

export async function startPatroniHosts(
  name: string,
  bins: PgBinaries,
  timings: PatroniHostTimings,
): Promise<HostTarget> {
  const { net, etcd, forget } = await hostsWithEtcd('ptfb');
  const user = serviceUser();
  const superPw = 'bench-super';
  const memberDir = (h: Host) => join(net.dir, `patroni-${h.index}`);
  const config = (h: Host) => join(memberDir(h), 'patroni.yml');
  const subnet = `${net.net}.0/24`;
  for (const h of net.hosts) {
    const dir = memberDir(h);
    mkdirSync(dir, { mode: 0o700 });
    const conf = {
      scope: 'bench-hosts',
      name: `m${h.index}`,
      restapi: { listen: `${h.addr}:${PATRONI_API_PORT}`, connect_address: `${h.addr}:${PATRONI_API_PORT}` },
      etcd3: { hosts: etcd.members.map((m) => `${m.host.addr}:2379`) },
      bootstrap: {
        dcs: {
          ttl: timings.ttl,
          loop_wait: timings.loopWait,
          retry_timeout: timings.retryTimeout,
          maximum_lag_on_failover: 1048576,
          synchronous_mode: true,
          postgresql: { use_pg_rewind: true, parameters: {} },
        },
        initdb: [{ encoding: 'UTF8' }, 'data-checksums', { locale: 'C' }],
        pg_hba: [`host replication replicator ${subnet} md5`, `host all all ${subnet} md5`],
      },
      postgresql: {
        listen: `${h.addr}:${PG_PORT}`,
        connect_address: `${h.addr}:${PG_PORT}`,
        data_dir: join(dir, 'data'),
        bin_dir: bins.dir,
        pgpass: join(dir, 'pgpass'),
        authentication: {
          replication: { username: 'replicator', password: 'bench-repl' },
          superuser: { username: 'postgres', password: superPw },
          rewind: { username: 'postgres', password: superPw },
        },
        parameters: { unix_socket_directories: dir },
      },
      tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
    };
    writeFileSync(config(h), stringify(conf));
    if (user) {
      chownSync(dir, user.uid, user.gid);
      chownSync(config(h), user.uid, user.gid);
    }
  }
  const startPatroni = (h: Host) => {
    h.spawn(PATRONI, [config(h)], {
      asPgUser: true,
      cwd: memberDir(h),
      env: { HOME: memberDir(h), LANG: 'C.UTF-8' },
      logFile: join(memberDir(h), 'patroni.log'),
    });
  };
  const stop = async () => {
    await net.destroy();
    forget();
  };
  const t: HostTarget = {
    name,
    settings: `ttl ${timings.ttl}, loop_wait ${timings.loopWait}, retry_timeout ${timings.retryTimeout}`,
    net,
    etcd,
    login: { user: 'postgres', password: superPw, database: 'postgres' },
    async restartHost(h) {
      await etcd.member(h).start();
      startPatroni(h);
    },
    versions: {
      patroni: version(PATRONI, ['--version']),
      postgres: version(join(bins.dir, 'postgres'), ['--version']),
      etcd: version('/usr/bin/etcd', ['--version']),
    },
    stop,
  };
  try {
    const [h1, ...rest] = net.hosts;
    startPatroni(h1!);
    await waitFor(`${name}: m1 bootstrapped as the leader`, 120_000, async () =>
      (await roles(t)).get(h1!) === 'primary' ? true : null,
    );
    for (const h of rest) startPatroni(h);
    await createAckTable(t);
    return t;
  } catch (e) {
    const tail = readFileSync(join(memberDir(net.hosts[0]!), 'patroni.log'), 'utf8')
      .split('\n')
      .slice(-20);
    await stop();
    throw new Error(`${name}: ${e instanceof Error ? e.message : String(e)}\n${tail.join('\n')}`);
  }
}
