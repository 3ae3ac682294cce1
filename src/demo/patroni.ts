/**
 * Patroni + etcd beside the demo's cluster, for the failover scenario's comparison: one etcd
 * member (v3 API, its default timings) and a Patroni cluster of the demo cluster's shape (a
 * primary and two streaming standbys, asynchronous: Patroni's default `synchronous_mode: false`),
 * with Patroni's documented defaults unless told otherwise (ttl 30, loop_wait 10, retry_timeout 10,
 * maximum_lag_on_failover 1 MB, use_pg_rewind), on the demo's PostgreSQL binaries. Patroni runs as
 * the demo nodes' unprivileged user when the demo runs as root (PostgreSQL refuses root), and each
 * member's postmaster goes under the demo nodes' CPU cap (again after a restart). The application
 * role, database and tables are the demo's. Files live in the demo cluster's directory; the
 * teardown kills everything at once (the data is thrown away), and is registered for every way out.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { runningPid } from '../cluster/instance.js';
import { findFreePortBlock } from '../cluster/ports.js';
import { run, serviceUser } from '../cluster/run-as.js';
import type { DemoCluster } from './cluster.js';
import { startDaemon } from './daemon.js';
import type { Daemon } from './daemon.js';
import { createTables } from './load.js';
import type { Endpoint } from './load.js';

export interface PatroniTimings {
  ttl: number;
  loopWait: number;
  retryTimeout: number;
}

/** Patroni's documented defaults (https://patroni.readthedocs.io/en/latest/dynamic_configuration.html). */
export const PATRONI_DEFAULTS: PatroniTimings = { ttl: 30, loopWait: 10, retryTimeout: 10 };

export interface PatroniMember {
  name: string;
  host: string;
  port: number;
  apiPort: number;
  pgdata: string;
}

export interface PatroniCluster {
  readonly members: readonly PatroniMember[];
  /** The application's login; connect through readWriteHosts (host and port here are the first member's). */
  readonly endpoint: Endpoint;
  readonly hosts: readonly { host: string; port: number }[];
  /** The member Patroni's REST API names leader, or null while there is none. */
  leader(): Promise<PatroniMember | null>;
  /** Ids present in demo_writes on the leader. */
  committedIds(): Promise<Set<number>>;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `patroni 3.0.2` / `etcd Version: 3.4.23` → `Patroni 3.0.2` / `etcd 3.4.23`; null when it does not answer. */
export function toolVersion(path: string, name: string): string | null {
  const r = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 20_000 });
  const m = /(\d+\.\d+\.\d+)/.exec(`${r.stdout ?? ''}`);
  return r.status === 0 && m ? `${name} ${m[1]}` : null;
}

async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  let last = '';
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
      if (/exited/.test(last)) throw e;
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not after ${ms / 1000} s${last ? ` (${last})` : ''}`);
    await sleep(200);
  }
}

/** Patroni's configuration of one member. */
export function patroniYaml(o: {
  scope: string;
  member: PatroniMember;
  etcdPort: number;
  binDir: string;
  dir: string;
  timings: PatroniTimings;
  passwords: { superuser: string; replication: string };
}): string {
  const { member: m, timings: t } = o;
  return stringify({
    scope: o.scope,
    name: m.name,
    restapi: { listen: `${HOST}:${m.apiPort}`, connect_address: `${HOST}:${m.apiPort}` },
    etcd3: { hosts: `${HOST}:${o.etcdPort}` },
    bootstrap: {
      dcs: {
        ttl: t.ttl,
        loop_wait: t.loopWait,
        retry_timeout: t.retryTimeout,
        maximum_lag_on_failover: 1048576,
        postgresql: { use_pg_rewind: true, parameters: {} },
      },
      initdb: [{ encoding: 'UTF8' }, { locale: 'C' }],
      pg_hba: [
        `host replication replicator ${HOST}/32 scram-sha-256`,
        `host all all ${HOST}/32 scram-sha-256`,
      ],
    },
    postgresql: {
      listen: `${HOST}:${m.port}`,
      connect_address: `${HOST}:${m.port}`,
      data_dir: m.pgdata,
      bin_dir: o.binDir,
      pgpass: join(o.dir, 'pgpass'),
      authentication: {
        replication: { username: 'replicator', password: o.passwords.replication },
        superuser: { username: 'postgres', password: o.passwords.superuser },
        rewind: { username: 'postgres', password: o.passwords.superuser },
      },
      parameters: { unix_socket_directories: o.dir },
    },
  });
}

/**
 * Starts etcd and `1 + standbys` Patroni members at once (the first to take etcd's initialize key
 * bootstraps, the others clone it), waits for a leader with every standby streaming, then creates
 * the demo's role, database and tables on it. `cap` puts a postmaster under the nodes' CPU cap.
 */
export async function startPatroni(
  cluster: DemoCluster,
  o: {
    patroni: string;
    etcd: string;
    standbys: number;
    timings: PatroniTimings;
    keys: number;
    cap: (group: string, pid: number) => void;
  },
): Promise<PatroniCluster> {
  const u = serviceUser();
  const own = (p: string) => {
    mkdirSync(p, { recursive: true, mode: 0o700 });
    if (u) chownSync(p, u.uid, u.gid);
  };
  const dir = join(cluster.dir, 'patroni');
  own(dir);
  const n = 1 + o.standbys;
  const base = await findFreePortBlock(2 + 2 * n);
  const members: PatroniMember[] = Array.from({ length: n }, (_, i) => ({
    name: `patroni${i}`,
    host: HOST,
    port: base + 2 + 2 * i,
    apiPort: base + 3 + 2 * i,
    pgdata: join(dir, `patroni${i}`, 'data'),
  }));
  const secret = () => randomBytes(18).toString('base64url');
  const passwords = { superuser: secret(), replication: secret(), app: secret() };
  const daemons: Daemon[] = [];
  const pgCtl = cluster.bins.pgCtl;
  // Patroni killed leaves its PostgreSQL running: every node stops at once, no shutdown checkpoint.
  const stopNodes = () =>
    Promise.all(
      members.map((m) =>
        runningPid(m.pgdata) === null
          ? Promise.resolve(null)
          : run(pgCtl, ['stop', '-D', m.pgdata, '-m', 'immediate', '-w', '-s'], {
              allowFail: true,
              timeoutMs: 30_000,
            }),
      ),
    );
  const stopNodesSync = () => {
    for (const m of members)
      if (runningPid(m.pgdata) !== null)
        spawnSync(pgCtl, ['stop', '-D', m.pgdata, '-m', 'immediate', '-w', '-s'], {
          stdio: 'ignore',
          timeout: 30_000,
          ...(u ? { uid: u.uid, gid: u.gid } : {}),
        });
  };
  // Registered first, so that it runs after the daemons' own stops.
  const forgetNodes = cluster.onCleanup('Patroni nodes', async () => void (await stopNodes()), stopNodesSync);
  const capped = new Map<string, number>();
  const sweep = () => {
    for (const m of members) {
      const pid = runningPid(m.pgdata);
      if (pid !== null && capped.get(m.name) !== pid) {
        o.cap(`patroni-${m.name}`, pid);
        capped.set(m.name, pid);
      }
    }
  };
  const sweeper = setInterval(sweep, 250);
  sweeper.unref();
  const stop = async () => {
    clearInterval(sweeper);
    await Promise.all(daemons.filter((d) => d !== etcd).map((d) => d.stop(true)));
    await stopNodes();
    forgetNodes();
    await etcd.stop(true);
  };

  const etcdUrl = `http://${HOST}:${base}`;
  const peer = `http://${HOST}:${base + 1}`;
  const etcd = startDaemon(cluster, {
    name: 'etcd',
    file: o.etcd,
    args: [
      '--name=demo',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=demo=${peer}`,
    ],
    log: join(dir, 'etcd.log'),
    cwd: dir,
    asService: true,
  });
  daemons.push(etcd);
  const api = async <T>(m: PatroniMember, path: string): Promise<{ status: number; body: T | null }> => {
    const r = await fetch(`http://${HOST}:${m.apiPort}${path}`, { signal: AbortSignal.timeout(2000) });
    const text = await r.text();
    try {
      return { status: r.status, body: JSON.parse(text) as T };
    } catch {
      return { status: r.status, body: null };
    }
  };
  const leader = async (): Promise<PatroniMember | null> => {
    for (const m of members) {
      try {
        const r = await api<{ members?: { name: string; role: string }[] }>(m, '/cluster');
        const l = r.body?.members?.find((x) => x.role === 'leader');
        if (l) return members.find((x) => x.name === l.name) ?? null;
      } catch {
        // the next member
      }
    }
    return null;
  };
  const superLogin = (m: PatroniMember, database: string) => ({
    host: m.host,
    port: m.port,
    user: 'postgres',
    password: passwords.superuser,
    database,
    connectionTimeoutMillis: 3000,
  });
  const query = async <R extends pg.QueryResultRow>(
    m: PatroniMember,
    database: string,
    sql: string,
  ): Promise<R[]> => {
    const c = new pg.Client(superLogin(m, database));
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query<R>(sql)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const app = cluster.endpoint();
  try {
    await waitFor('etcd answering', 30_000, async () => {
      if (etcd.exited()) throw new Error(`etcd exited:\n${etcd.tail()}`);
      const r = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(1000) });
      return ((await r.json()) as { health?: string }).health === 'true';
    });
    for (const m of members) {
      const mdir = join(dir, m.name);
      own(mdir);
      const file = join(mdir, 'patroni.yml');
      writeFileSync(
        file,
        patroniYaml({
          scope: 'pgscale-demo-patroni',
          member: m,
          etcdPort: base,
          binDir: cluster.bins.dir,
          dir: mdir,
          timings: o.timings,
          passwords,
        }),
        { mode: 0o600 },
      );
      if (u) chownSync(file, u.uid, u.gid);
      daemons.push(
        startDaemon(cluster, {
          name: `patroni ${m.name}`,
          file: o.patroni,
          args: [file],
          log: join(mdir, 'patroni.log'),
          cwd: mdir,
          asService: true,
          env: { HOME: mdir, LANG: 'C.UTF-8' },
        }),
      );
    }
    await waitFor(`Patroni: a leader with ${o.standbys} standbys streaming`, 180_000, async () => {
      const dead = daemons.find((d) => d.exited());
      if (dead) throw new Error(`a Patroni process exited:\n${dead.tail()}`);
      const l = await leader();
      if (!l) return false;
      const [row] = await query<{ rec: boolean; n: number }>(
        l,
        'postgres',
        // Patroni's standbys stream as their member name; pg_basebackup's own WAL stream (a standby
        // still being cloned) shows as 'streaming' too, under its own name.
        "SELECT pg_is_in_recovery() AS rec, (SELECT count(*)::int FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'patroni%') AS n",
      );
      return row !== undefined && !row.rec && row.n >= o.standbys;
    });
    const l = (await leader())!;
    const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;
    const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
    await query(l, 'postgres', `CREATE ROLE ${ident(app.user)} LOGIN PASSWORD ${lit(passwords.app)}`);
    await query(l, 'postgres', `CREATE DATABASE ${ident(app.database)} OWNER ${ident(app.user)}`);
    await createTables({ ...app, host: l.host, port: l.port, password: passwords.app }, o.keys);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    members,
    endpoint: { ...app, host: HOST, port: members[0]!.port, password: passwords.app },
    hosts: members.map((m) => ({ host: m.host, port: m.port })),
    leader,
    async committedIds() {
      const l = await leader();
      if (!l) throw new Error('Patroni has no leader');
      const rows = await query<{ id: string }>(l, app.database, 'SELECT id::text AS id FROM demo_writes');
      return new Set(rows.map((r) => Number(r.id)));
    },
    stop,
  };
}
