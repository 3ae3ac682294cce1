/**
 * The demo's cluster, run through pgscale's public surface: a pgscale.yaml written into a
 * temporary directory (one group: a primary and two streaming standbys, on a free block of
 * loopback ports), and the cluster's controller — what `pgscale up --detach` runs — started as a
 * background process (`pgscale controller -c FILE`, in its own session so that the terminal's
 * Ctrl-C reaches the demo, which then stops it in order). The controller is ready when its HTTP
 * API's /health answers with its pid. Also: standalone `pgscale proxy` processes in front of the
 * primary and some of its replicas, and the CLI for what only it offers (switchover, history).
 * Teardown stops the controller (it stops its services and the nodes), destroys the cluster's data
 * and removes the directory; its synchronous fallback kills and `pg_ctl stop -m immediate`s.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { parseDocument, stringify } from 'yaml';
import type { PgBinaries } from '../cluster/binaries.js';
import { Cluster } from '../cluster/cluster.js';
import { pidAlive, runningPid } from '../cluster/instance.js';
import { findFreePortBlock } from '../cluster/ports.js';
import { cleanEnv, run, serviceUser } from '../cluster/run-as.js';
import type { NodeStatus } from '../cluster/status.js';
import { loadConfig, parseConfig } from '../config/load.js';
import type { NodeRef } from '../config/load.js';
import { configSchema } from '../config/schema.js';
import { INIT_DEFAULTS, renderConfig } from '../config/template.js';
import { health } from '../web/health-client.js';
import { showNodes } from './proxy-nodes.js';
import type { ProxyNode } from './proxy-nodes.js';
import type { Cleanup } from './cleanup.js';
import type { Endpoint } from './load.js';

const BIN = fileURLToPath(new URL('../../bin/pgscale.js', import.meta.url));
const HOST = '127.0.0.1';
/**
 * Free ports kept for what runs in front of the cluster: the read scenario's two standalone
 * proxies (two ports each) and HAProxy, the connections scenario's PgBouncer — 6 in a full run —
 * and two more. (5 left PgBouncer without one once HAProxy came: "no spare port left".)
 */
const SPARE = 8;

export interface DemoClusterOptions {
  /** Parent of the temporary directory (default: the system's). */
  dir: string;
  /** max_connections of every node (scenario 2 connects 1,000 clients directly). */
  maxConnections: number;
  /** replication.synchronous */
  synchronous: 'on' | 'off';
  /** Standbys of group 0 (default 2); the sharding scenarios' cluster has none. */
  replicas?: number;
  /** Names the temporary directory apart from another demo cluster of the same run. */
  label?: string;
}

/** Whether this build has automatic failover (the `ha` section of pgscale.yaml). */
export function haAvailable(): boolean {
  return 'ha' in configSchema.shape;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Waits for a child process to exit, up to `ms`; true when it did. */
export async function waitExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

export function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `pgscale ARGS` (this build's CLI) and collects its output. */
export function pgscaleCli(args: readonly string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => resolve({ code: -1, stdout, stderr: stderr + e.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export class DemoCluster {
  readonly file: string;
  readonly dataDir: string;
  readonly proxyPort: number;
  readonly httpPort: number;
  /** Spare ports of the block, for the standalone proxies. */
  private readonly spare: number[];
  private controller: ChildProcess | null = null;
  private cluster: Cluster;
  private forgetters: (() => void)[] = [];

  private constructor(
    readonly dir: string,
    file: string,
    ports: { proxy: number; http: number; spare: number[] },
    private readonly cleanup: Cleanup,
  ) {
    this.file = file;
    this.proxyPort = ports.proxy;
    this.httpPort = ports.http;
    this.spare = ports.spare;
    this.cluster = new Cluster(loadConfig(file));
    this.dataDir = this.cluster.dataDir;
  }

  /** Writes the configuration into a new temporary directory; registers its removal. */
  static async create(o: DemoClusterOptions, cleanup: Cleanup): Promise<DemoCluster> {
    const dir = join(
      o.dir,
      `pgscale-demo-${process.pid}-${Date.now().toString(36)}${o.label ? `-${o.label}` : ''}`,
    );
    mkdirSync(dir, { mode: 0o755 });
    const removeDir = () => rmSync(dir, { recursive: true, force: true });
    const forgetDir = cleanup.add(`directory ${dir}`, () => Promise.resolve(removeDir()), removeDir);
    const replicas = o.replicas ?? 2;
    const nodes = replicas + 1;
    // proxy, HTTP API, the agents' api ports (http.port + 1 + position), SPARE spare, then the nodes.
    const base = await findFreePortBlock(2 + nodes + SPARE + nodes);
    const doc = parseDocument(
      renderConfig({
        ...INIT_DEFAULTS,
        name: 'pgscale-demo',
        dataDir: './data',
        groups: 1,
        replicas,
        host: HOST,
        proxyPort: base,
        httpPort: base + 1,
        portBase: base + 2 + nodes + SPARE,
      }),
    );
    doc.setIn(['postgres', 'parameters'], { max_connections: o.maxConnections });
    doc.setIn(['replication', 'synchronous'], o.synchronous);
    // Reads go to the replicas and, with the same share, to the primary.
    doc.setIn(['proxy', 'primary_read_weight'], 1);
    doc.setIn(['proxy', 'max_client_conn'], Math.max(10_000, o.maxConnections * 2));
    // Scenario 2 saturates a primary capped at a fraction of a core on purpose; a primary that
    // is slow to answer must not be taken for a dead one (the failover scenario kills it).
    doc.setIn(['ha', 'unreachable_timeout'], 15);
    const file = join(dir, 'pgscale.yaml');
    const text = doc.toString();
    parseConfig(text, file);
    writeFileSync(file, text);
    const spare = Array.from({ length: SPARE }, (_, i) => base + 2 + nodes + i);
    const c = new DemoCluster(dir, file, { proxy: base, http: base + 1, spare }, cleanup);
    // Registered after the directory: runs before its removal.
    c.forgetters = [
      forgetDir,
      cleanup.add(
        'cluster',
        () => c.destroy(),
        () => c.destroySync(),
      ),
    ];
    return c;
  }

  get config() {
    return this.cluster.config;
  }

  nodes(): NodeRef[] {
    return this.cluster.nodes();
  }

  pgdata(node: string): string {
    return this.cluster.paths(node).pgdata;
  }

  postmasterPid(node: string): number | null {
    return runningPid(this.pgdata(node));
  }

  /** The application's endpoint: the controller's proxy, or one node directly. */
  endpoint(node?: { host: string; port: number }): Endpoint {
    const s = this.cluster.secrets();
    return {
      host: node?.host ?? HOST,
      port: node?.port ?? this.proxyPort,
      user: this.config.app.user,
      password: s.app,
      database: this.config.app.database,
    };
  }

  /** A superuser connection to a node (application database), connected. */
  async superClient(node: { host: string; port: number }): Promise<pg.Client> {
    const c = new pg.Client({
      host: node.host,
      port: node.port,
      user: this.config.postgres.superuser,
      password: this.cluster.secrets().superuser,
      database: this.config.app.database,
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  }

  /** `SHOW NODES` on a proxy's admin console (as the superuser): role, address, read set, reads. */
  showNodes(port: number): Promise<ProxyNode[]> {
    return showNodes({
      host: HOST,
      port,
      user: this.config.postgres.superuser,
      password: this.cluster.secrets().superuser,
    });
  }

  status(): Promise<NodeStatus[]> {
    return this.cluster.status();
  }

  async primary(): Promise<NodeStatus> {
    const p = (await this.status()).find((n) => n.role === 'primary' && n.state === 'running');
    if (!p) throw new Error('no running primary');
    return p;
  }

  postgresVersion(): string {
    return this.cluster.bins.version;
  }

  /** The PostgreSQL binaries the cluster runs (for another tool's nodes: Patroni's). */
  get bins(): PgBinaries {
    return this.cluster.bins;
  }

  /** Where the PostgreSQL binaries come from (system, embedded …). */
  source(): string {
    return this.cluster.bins.source;
  }

  /** Starts the controller in the background and waits until its HTTP API says it is ready. */
  async start(onWait?: (seconds: number) => void): Promise<void> {
    const log = join(this.dataDir, 'logs', 'controller.log');
    mkdirSync(join(this.dataDir, 'logs'), { recursive: true });
    const fd = openSync(log, 'a', 0o640);
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [BIN, 'controller', '-c', this.file, '--timeout', '120'], {
        detached: true,
        stdio: ['ignore', fd, fd],
        cwd: this.dir,
        env: cleanEnv(),
      });
    } finally {
      closeSync(fd);
    }
    child.unref();
    this.controller = child;
    let exited: string | null = null;
    child.once('exit', (code, signal) => (exited = signal ? `killed by ${signal}` : `exit code ${code}`));
    child.once('error', (e) => (exited = `could not start: ${e.message}`));
    const t0 = Date.now();
    for (;;) {
      if (exited !== null) {
        throw new Error(
          `the cluster's controller stopped during start-up (${String(exited)}); last lines of ${log}:\n${tail(log, 15)}`,
        );
      }
      const h = await health(HOST, this.httpPort);
      if (h?.status === 'ok' && h.pid === child.pid) return;
      if (Date.now() - t0 > 300_000) throw new Error(`the controller was not ready after 300 s; see ${log}`);
      onWait?.((Date.now() - t0) / 1000);
      await sleep(150);
    }
  }

  /** Stops the controller (and so the nodes), keeping the data; for a restart with other settings. */
  async stopController(): Promise<void> {
    const pid = this.controller?.pid;
    this.controller = null;
    if (pid === undefined) return;
    kill(pid, 'SIGTERM');
    if (!(await waitExit(pid, 120_000))) kill(pid, 'SIGKILL');
    await this.cluster.down();
  }

  /** Changes replication.synchronous in pgscale.yaml (takes effect at the next start). */
  setSynchronous(mode: 'on' | 'off'): void {
    const doc = parseDocument(readFileSync(this.file, 'utf8'));
    doc.setIn(['replication', 'synchronous'], mode);
    const text = doc.toString();
    this.cluster = new Cluster(parseConfig(text, this.file), undefined, this.cluster.bins);
    writeFileSync(this.file, text);
  }

  /** Reads pgscale.yaml again (after `pgscale add-group` changed it). */
  reload(): void {
    this.cluster = new Cluster(loadConfig(this.file), undefined, this.cluster.bins);
  }

  /** Number of groups in pgscale.yaml. */
  groupCount(): number {
    return this.config.groups.length;
  }

  /** Removes the cluster and its directory now, as the end of the run would (it is not needed any more). */
  async dispose(): Promise<void> {
    await this.destroy();
    rmSync(this.dir, { recursive: true, force: true });
    for (const f of this.forgetters) f();
  }

  /** Leaves everything running (`--keep`): no teardown at exit. */
  keep(): void {
    for (const f of this.forgetters) f();
  }

  /**
   * The data is deleted anyway, so no clean shutdown is owed to anyone: the controller is killed
   * first (so that nothing reacts to the nodes going away), then every node stops at once
   * (`-m immediate`, no shutdown checkpoint), then the cluster's files go.
   */
  private async destroy(): Promise<void> {
    const pid = this.controller?.pid;
    this.controller = null;
    if (pid !== undefined) kill(pid, 'SIGKILL');
    // Every node at once (the synchronous fallback below stops them one after the other).
    await Promise.all(
      this.nodes().map((n) =>
        run(this.cluster.bins.pgCtl, ['stop', '-D', this.pgdata(n.name), '-m', 'immediate', '-w', '-s'], {
          allowFail: true,
          timeoutMs: 30_000,
        }),
      ),
    );
    await this.cluster.destroy();
  }

  private destroySync(): void {
    const pid = this.controller?.pid;
    this.controller = null;
    if (pid !== undefined) kill(pid, 'SIGKILL');
    const u = serviceUser();
    for (const n of this.nodes()) {
      spawnSync(this.cluster.bins.pgCtl, ['stop', '-D', this.pgdata(n.name), '-m', 'immediate', '-w', '-s'], {
        stdio: 'ignore',
        timeout: 30_000,
        ...(u ? { uid: u.uid, gid: u.gid } : {}),
      });
    }
  }

  /**
   * A standalone `pgscale proxy` in front of the primary and the given replicas (transaction
   * pooling, reads split with the primary's share equal to a replica's), on a spare port.
   */
  /** Registers the teardown of something started in front of the cluster (see Cleanup.add). */
  onCleanup(name: string, undo: () => Promise<void>, undoSync: () => void): () => void {
    return this.cleanup.add(name, undo, undoSync);
  }

  /** One of the spare ports of the cluster's block (for another program in front of it). */
  takePort(): number {
    const port = this.spare.shift();
    if (port === undefined) throw new Error('no spare port left');
    return port;
  }

  async startProxy(replicas: readonly NodeRef[], poolSize: number): Promise<StandaloneProxy> {
    const port = this.spare.shift();
    if (port === undefined) throw new Error('no spare port left for a proxy');
    const primary = await this.primary();
    const secrets = this.cluster.secrets();
    const dir = join(this.dir, `proxy-${port}`);
    mkdirSync(dir, { recursive: true });
    const auth = join(dir, 'userlist.txt');
    const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
    writeFileSync(
      auth,
      `${q(this.config.app.user)} ${q(secrets.app)}\n${q(this.config.postgres.superuser)} ${q(secrets.superuser)}\n`,
      { mode: 0o600 },
    );
    const file = join(dir, 'pgscale.yaml');
    const text = stringify({
      cluster: { name: 'pgscale-demo-proxy', data_dir: join(dir, 'data') },
      http: { listen: HOST, port: this.spare.shift() ?? port + 1 },
      proxy: {
        listen: HOST,
        port,
        pool_mode: 'transaction',
        default_pool_size: poolSize,
        auth_type: 'scram-sha-256',
        auth_file: auth,
        admin_users: [this.config.postgres.superuser],
        primary_read_weight: 1,
        databases: {
          [this.config.app.database]: {
            host: primary.host,
            port: primary.port,
            replicas: replicas.map((r) => ({ host: r.host, port: r.port })),
          },
        },
      },
      groups: [],
    });
    parseConfig(text, file);
    writeFileSync(file, text, { mode: 0o600 });
    const log = join(dir, 'proxy.log');
    const fd = openSync(log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [BIN, 'proxy', '-c', file], {
        stdio: ['ignore', fd, fd],
        env: cleanEnv(),
      });
    } finally {
      closeSync(fd);
    }
    const pid = child.pid ?? -1;
    let exited = false;
    child.once('exit', () => (exited = true));
    const stop = async () => {
      kill(pid, 'SIGTERM');
      if (!(await waitExit(pid, 15_000))) kill(pid, 'SIGKILL');
      forget();
    };
    const forget = this.cleanup.add(`proxy pid ${pid}`, stop, () => kill(pid, 'SIGKILL'));
    const endpoint = { ...this.endpoint(), port };
    await waitAccepting(endpoint, 'pgscale proxy', () => exited, log, stop, forget);
    return { endpoint, pid, stop };
  }
}

/**
 * Waits until a program in front of the cluster (a proxy, PgBouncer) answers a query at
 * `endpoint`; on its exit, or after 60 s, stops it and throws with the last lines of its log.
 */
export async function waitAccepting(
  endpoint: Endpoint,
  what: string,
  exited: () => boolean,
  log: string,
  stop: () => Promise<void>,
  forget: () => void,
): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (exited()) {
      forget();
      throw new Error(`${what} stopped during start-up; last lines of ${log}:\n${tail(log, 15)}`);
    }
    const c = new pg.Client(endpoint);
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      return;
    } catch {
      await c.end().catch(() => undefined);
    }
    if (Date.now() - t0 > 60_000) {
      await stop();
      throw new Error(`${what} did not accept connections within 60 s; see ${log}`);
    }
    await sleep(100);
  }
}

export interface StandaloneProxy {
  endpoint: Endpoint;
  pid: number;
  stop(): Promise<void>;
}
