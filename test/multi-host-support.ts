/**
 * The cluster of test/multi-host.test.ts (issue #18): five network-namespace hosts
 * (netns-hosts.ts) — three database hosts, each with an etcd member, a `pgscale agent` and one node
 * of a group in synchronous mode, and two hosts with a stateless `pgscale proxy --cluster` — and
 * what the tests ask of it: each node's role, a writer recording acknowledged inserts through the
 * proxies, the CLI run from the root namespace (a machine that only reaches etcd).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { binarySets, repoRoot } from './harness.js';
import { startEtcd } from './netns-etcd-cluster.js';
import type { EtcdCluster } from './netns-etcd-cluster.js';
import { NetHosts } from './netns-hosts.js';
import type { Host } from './netns-hosts.js';

export const PORT = 5432;
export const TTL_S = 6;
export const PROXY_PORT = 6432;

type Role = 'primary' | 'standby' | null;

/** What `pgscale status --json` prints when it reads the store (several hosts). */
export interface StoreStatusJson {
  agents: { host: string; pid: number }[];
  decider: string | null;
  paused: boolean;
  probed: true | string;
  groups: { group: number; leader: string | null; epoch: number | null }[];
  nodes: { name: string; role: string | null; state: string; streaming: boolean | null }[];
}

export interface Writer {
  readonly acked: number[];
  readonly errors: string[];
  /** Which proxy host acknowledged each id. */
  readonly viaHost: Map<number, Host>;
  stop(): Promise<void>;
}

/** The shape of a MultiHostCluster (the defaults: test/multi-host.test.ts's). */
export interface MultiHostOptions {
  /** Hosts with an agent and a node of group 0 from the start (default 3). */
  readonly db?: number;
  /** Hosts with an agent (`--spare`) and no node yet, for add-replica --host (default 0). */
  readonly spare?: number;
  /** Hosts with a stateless proxy (default 2). */
  readonly proxies?: number;
  /** cluster.tls on: one CA, copied from the first host to the others (default off). */
  readonly tls?: boolean;
  /**
   * `groups: 2` (test/multi-host-sharding.test.ts): group g's nodes listen on PORT + g, group 0's
   * on the first two database hosts, group 1's on the third and the second; no table `acked`.
   */
  readonly groups?: 1 | 2;
  /** More environment for the proxies (test/multi-host-moves.test.ts: a move's fault point). */
  readonly proxyEnv?: NodeJS.ProcessEnv;
}

export class MultiHostCluster {
  net!: NetHosts;
  etcd!: EtcdCluster;
  file = '';
  password = '';
  appPassword = '';
  dbHosts: Host[] = [];
  spareHosts: Host[] = [];
  proxyHosts: Host[] = [];
  /** The agents and proxies started, by host. */
  readonly agents = new Map<Host, ChildProcess>();
  /** Ids are never reused across writers (one table for every test). */
  private nextId = 1;
  private readonly bins = binarySets()[0]!;

  constructor(private readonly o: MultiHostOptions = {}) {}

  private get groupCount(): 1 | 2 {
    return this.o.groups ?? 1;
  }

  /** Group g's nodes: [host, port, name], the first its initial primary. */
  groupNodes(g: number): [Host, number, string][] {
    if (this.groupCount === 1) return this.dbHosts.map((h) => [h, PORT, this.nodeName(h)]);
    const [h1, h2, h3] = this.dbHosts as [Host, Host, Host];
    return (g === 0 ? [h1, h2] : [h3, h2]).map((h) => [h, PORT + g, `g${g}n${h.index}`]);
  }

  nodeName = (h: Host): string => `n${h.index}`;
  dataDir = (h: Host): string => join(this.net.dir, `data-${h.index}`);

  /** Hosts, etcd, the agents (the first creates the cluster), the table `acked`, the proxies. */
  async start(): Promise<void> {
    const db = this.o.db ?? 3;
    const spare = this.o.spare ?? 0;
    this.net = await NetHosts.create({ hosts: db + spare + (this.o.proxies ?? 2), prefix: 'pgmh' });
    const net = this.net;
    this.dbHosts = net.hosts.slice(0, db);
    this.spareHosts = net.hosts.slice(db, db + spare);
    this.proxyHosts = net.hosts.slice(db + spare);
    this.etcd = await startEtcd(net, net.hosts.slice(0, 3));
    this.file = join(net.dir, 'pgscale.yaml');
    const groups = [...Array(this.groupCount).keys()]
      .map(
        (g) =>
          '  - nodes:\n' +
          this.groupNodes(g)
            .map(([h, port, name]) => `      - { name: ${name}, host: ${h.addr}, port: ${port} }`)
            .join('\n'),
      )
      .join('\n');
    writeFileSync(
      this.file,
      `cluster:
  name: multi
  id: multi-${process.pid}
  data_dir: ./data${this.o.tls ? '\n  tls:\n    mode: on' : ''}
postgres:
  client_networks: [${net.net}.0/24]
replication:
  networks: [${net.net}.0/24]
  synchronous: 'on'
ha:
  store: etcd
  etcd:
    endpoints: [${this.etcd.endpoints.join(', ')}]
  ttl: ${TTL_S}
  # A test kills agents with SIGKILL: on a host with a watchdog that would reset it.
  watchdog:
    mode: 'off'
proxy:
  enabled: false
  listen: 0.0.0.0
  port: ${PROXY_PORT}
groups:
${groups}
`,
    );
    for (const h of net.hosts) mkdirSync(this.dataDir(h), { mode: 0o755 });
    // The first host creates the cluster's passwords; the others get a copy, as an operator does.
    const [h1, ...rest] = this.dbHosts;
    this.startAgent(h1!);
    const secrets = join(this.dataDir(h1!), 'secrets.json');
    // With TLS, also its CA: complete once its certificate is in <data_dir>/tls (the key is
    // written first, so a copy taken earlier would make another host create a CA of its own).
    const done = [secrets, ...(this.o.tls ? [join(this.dataDir(h1!), 'tls', 'ca.crt')] : [])];
    await this.waitFor('the first host to create the cluster', () =>
      Promise.resolve(done.every((f) => existsSync(f)) ? true : null),
    );
    const parsed = JSON.parse(readFileSync(secrets, 'utf8')) as { superuser: string; app: string };
    this.password = parsed.superuser;
    this.appPassword = parsed.app;
    // With TLS, the CA the first agent created goes to every host before its agent starts (a
    // proxy's host needs its certificate only), as docs/multi-host.md says.
    const ca = join(this.dataDir(h1!), 'ca');
    for (const h of [...rest, ...this.spareHosts]) {
      copyFileSync(secrets, join(this.dataDir(h), 'secrets.json'));
      if (this.o.tls) cpSync(ca, join(this.dataDir(h), 'ca'), { recursive: true });
      this.startAgent(h, this.spareHosts.includes(h) ? ['--spare'] : []);
    }
    if (this.groupCount === 1) {
      const p = await this.primary();
      assert.equal(p, h1, 'the group starts on its first node');
      await this.allStreaming(p);
      const c = await this.connect(p);
      await c.query('CREATE TABLE acked (id int PRIMARY KEY)');
      await c.query('GRANT ALL ON acked TO app');
      await c.end();
    } else
      for (const g of [0, 1]) {
        const [h, port] = this.groupNodes(g)[0]!;
        await this.waitFor(`group ${g}'s primary`, async () => {
          const c = await this.connect(h, 1000, port);
          try {
            const r = await c.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec');
            return r.rows[0]!.rec ? null : true;
          } finally {
            await c.end();
          }
        });
      }
    // Two stateless proxies on hosts of their own, with a copy of the secrets.
    for (const h of this.proxyHosts) {
      copyFileSync(secrets, join(this.dataDir(h), 'secrets.json'));
      if (this.o.tls) {
        mkdirSync(join(this.dataDir(h), 'tls'), { mode: 0o700 });
        copyFileSync(join(ca, 'ca.crt'), join(this.dataDir(h), 'tls', 'ca.crt'));
      }
      this.startProxy(h);
    }
    for (const h of this.proxyHosts)
      await this.waitFor(`the proxy on ${h.addr}`, async () => {
        const pc = await this.viaProxy(h);
        await pc.query('SELECT 1');
        await pc.end();
        return true;
      });
  }

  /** The agents stop their nodes; what has not stopped within a minute goes with the hosts. */
  async stop(): Promise<void> {
    const children = [...this.agents.values()];
    for (const a of children) a.kill('SIGTERM');
    await Promise.race([
      Promise.all(
        children.map((a) =>
          a.exitCode !== null ? Promise.resolve() : new Promise((r) => a.once('exit', r)),
        ),
      ),
      new Promise((r) => setTimeout(r, 60_000)),
    ]);
    if (process.env.PGSCALE_KEEP_LOGS && this.net) {
      try {
        cpSync(this.net.dir, process.env.PGSCALE_KEEP_LOGS, {
          recursive: true,
          filter: (f) => !f.includes('/data-') && !f.includes('etcd'),
        });
      } catch (e) {
        console.log('copy failed', e);
      }
    }
    await this.net?.destroy();
  }

  startAgent(h: Host, extra: string[] = []): void {
    const child = h.spawn(
      process.execPath,
      [
        join(repoRoot, 'bin/pgscale.js'),
        'agent',
        '-c',
        this.file,
        '--host',
        h.addr,
        '--data-dir',
        this.dataDir(h),
        ...extra,
      ],
      { env: { PGSCALE_PG_BIN: this.bins.dir }, logFile: join(this.net.dir, `agent-${h.index}.log`) },
    );
    this.agents.set(h, child);
  }

  startProxy(h: Host): void {
    const child = h.spawn(
      process.execPath,
      [
        join(repoRoot, 'bin/pgscale.js'),
        'proxy',
        '-c',
        this.file,
        '--cluster',
        '--data-dir',
        this.dataDir(h),
      ],
      {
        env: { PGSCALE_PG_BIN: this.bins.dir, ...this.o.proxyEnv },
        logFile: join(this.net.dir, `proxy-${h.index}.log`),
      },
    );
    this.agents.set(h, child);
  }

  /** The superuser on host h's node (on `port`), database app. */
  async connect(h: Host, timeoutMs = 1000, port = PORT): Promise<pg.Client> {
    const c = new pg.Client({
      host: h.addr,
      port,
      user: 'postgres',
      password: this.password,
      database: 'app',
      connectionTimeoutMillis: timeoutMs,
      // cluster.tls: connections from beyond a node's host must use TLS; verified as libpq's
      // verify-full does (the node's certificate names its address).
      ...(this.o.tls
        ? { ssl: { ca: readFileSync(join(this.dataDir(this.dbHosts[0]!), 'ca', 'ca.crt')) } }
        : {}),
      statement_timeout: 2000,
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  }

  /** What each node says it is right now: 'primary', 'standby', or null (does not answer). */
  async roles(): Promise<Map<Host, Role>> {
    const out = new Map<Host, Role>();
    await Promise.all(
      this.dbHosts.map(async (h) => {
        let c: pg.Client | null = null;
        try {
          c = await this.connect(h, 500);
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

  async waitFor<T>(what: string, f: () => Promise<T | null>, ms = 120_000): Promise<T> {
    const until = Date.now() + ms;
    for (;;) {
      const v = await f().catch(() => null);
      if (v !== null) return v;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}; logs in ${this.net.dir}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The one node that answers as a primary (waits until there is exactly one). */
  primary(): Promise<Host> {
    return this.waitFor('a primary', async () => {
      const r = await this.roles();
      const p = [...r].filter(([, v]) => v === 'primary').map(([h]) => h);
      return p.length === 1 ? p[0]! : null;
    });
  }

  /** Every other node answers as a standby streaming from the primary p. */
  allStreaming(p: Host): Promise<boolean> {
    return this.waitFor('every standby streaming', async () => {
      const c = await this.connect(p);
      try {
        const r = await c.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name ~ '^n[0-9]+$'",
        );
        return r.rows[0]!.n === this.dbHosts.length - 1 ? true : null;
      } finally {
        await c.end();
      }
    });
  }

  /** The ids of `acked` as the node on h holds them. */
  async ackedIds(h: Host): Promise<Set<number>> {
    const c = await this.connect(h);
    try {
      return new Set((await c.query<{ id: number }>('SELECT id FROM acked')).rows.map((r) => r.id));
    } finally {
      await c.end();
    }
  }

  /** The application through a stateless proxy (`pgscale proxy --cluster`) on host `h`. */
  async viaProxy(h: Host): Promise<pg.Client> {
    const c = new pg.Client({
      host: h.addr,
      port: PROXY_PORT,
      user: 'app',
      password: this.appPassword,
      database: 'app',
      connectionTimeoutMillis: 2000,
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  }

  /**
   * Inserts ids one by one through the proxies (the first that answers; the next after an error)
   * and records those acknowledged.
   */
  writer(): Writer {
    const acked: number[] = [];
    const errors: string[] = [];
    const viaHost = new Map<number, Host>();
    let stop = false;
    let turn = 0;
    const done = (async () => {
      let c: pg.Client | null = null;
      let h: Host | null = null;
      while (!stop) {
        try {
          if (!c) {
            h = this.proxyHosts[turn++ % this.proxyHosts.length]!;
            c = await this.viaProxy(h);
          }
          const id = this.nextId++;
          await c.query('INSERT INTO acked (id) VALUES ($1)', [id]);
          acked.push(id);
          viaHost.set(id, h!);
        } catch (e) {
          errors.push((e as Error).message);
          await c?.end().catch(() => undefined);
          c = null;
          await new Promise((res) => setTimeout(res, 50));
        }
      }
      await c?.end().catch(() => undefined);
    })();
    return {
      acked,
      errors,
      viaHost,
      stop: async () => {
        stop = true;
        await done;
      },
    };
  }

  /**
   * The CLI as an operator runs it from a machine that only reaches etcd: the root namespace,
   * with the config file and no data directory (cluster.data_dir does not exist there).
   */
  cli(args: string[]): Promise<{ code: number; out: string; stdout: string }> {
    return new Promise((resolve) => {
      assert.equal(existsSync(join(this.net.dir, 'data')), false, 'the CLI runs with no data directory');
      execFile(
        process.execPath,
        [join(repoRoot, 'bin/pgscale.js'), ...args, '-c', this.file],
        { env: { ...process.env, PGSCALE_PG_BIN: this.bins.dir }, timeout: 240_000 },
        (err, stdout, stderr) =>
          resolve({
            code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
            out: stdout + stderr,
            stdout,
          }),
      );
    });
  }

  async storeStatus(extra: string[] = []): Promise<StoreStatusJson> {
    const r = await this.cli(['status', '--json', ...extra]);
    // stdout only: stderr carries the config's warnings (TLS is off across hosts here).
    return JSON.parse(r.stdout) as StoreStatusJson;
  }
}
