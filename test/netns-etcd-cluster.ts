/**
 * A 3-member etcd cluster over network-namespace hosts (netns-hosts.ts): one member per host on
 * the host's own address, client port 2379 and peer port 2380 inside its namespace (never in the
 * root namespace), a static initial cluster, data under the run's temporary directory. Timings
 * are shortened for tests, as in etcd-harness.ts: heartbeat 50 ms, election timeout 500 ms
 * (etcd's minimum lease TTL becomes 1.5 × 500 ms, so 1 s leases are honoured), fsync off. A member
 * can be stopped, killed or started again on its data; killing its whole host (host.kill()) kills
 * it too, and start() brings it back after that.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ETCD_BIN } from './etcd-harness.js';
import type { Host, NetHosts } from './netns-hosts.js';

export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** etcd's raft timings in these tests (ms). */
export const ETCD_HEARTBEAT_MS = 50;
export const ETCD_ELECTION_MS = 500;

export class EtcdMember {
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly host: Host,
    private readonly dir: string,
    private readonly initialCluster: string,
    private readonly token: string,
  ) {
    this.clientUrl = `http://${host.addr}:${ETCD_CLIENT_PORT}`;
    this.peerUrl = `http://${host.addr}:${ETCD_PEER_PORT}`;
    this.dataDir = join(dir, `etcd-${name}`);
    this.logFile = join(dir, `etcd-${name}.log`);
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Starts the member (again, on its data directory when it has one); does not wait for health. */
  async start(): Promise<void> {
    await this.exited;
    if (this.child) throw new Error(`etcd member ${this.name} is already running`);
    const child = this.host.spawn(
      ETCD_BIN,
      [
        `--name=${this.name}`,
        `--data-dir=${this.dataDir}`,
        `--listen-client-urls=${this.clientUrl}`,
        `--advertise-client-urls=${this.clientUrl}`,
        `--listen-peer-urls=${this.peerUrl}`,
        `--initial-advertise-peer-urls=${this.peerUrl}`,
        `--initial-cluster=${this.initialCluster}`,
        `--initial-cluster-token=${this.token}`,
        // Ignored when the data directory exists (a restart).
        '--initial-cluster-state=new',
        `--heartbeat-interval=${ETCD_HEARTBEAT_MS}`,
        `--election-timeout=${ETCD_ELECTION_MS}`,
        '--unsafe-no-fsync',
      ],
      { logFile: this.logFile },
    );
    this.child = child;
    this.exited = new Promise((resolve) => {
      const done = () => {
        if (this.child === child) this.child = null;
        resolve();
      };
      child.once('exit', done);
      child.once('error', done);
    });
    return Promise.resolve();
  }

  /** Sends `signal` (SIGTERM: a clean stop; SIGKILL: a crash) and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.child?.kill(signal);
    await this.exited;
  }

  kill(): Promise<void> {
    return this.stop('SIGKILL');
  }

  /** Whether the member says it is healthy (it has a leader), asked from the root namespace. */
  async healthy(timeoutMs = 1000): Promise<boolean> {
    try {
      const res = await fetch(`${this.clientUrl}/health`, { signal: AbortSignal.timeout(timeoutMs) });
      return ((await res.json()) as { health?: string }).health === 'true';
    } catch {
      return false;
    }
  }

  logTail(lines = 15): string {
    if (!existsSync(this.logFile)) return '(no log)';
    return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  }
}

export class EtcdCluster {
  constructor(readonly members: readonly EtcdMember[]) {}

  /** Client URLs of every member, for EtcdStore's `endpoints`. */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  member(host: Host): EtcdMember {
    const m = this.members.find((x) => x.host === host);
    if (!m) throw new Error(`no etcd member on ${host.toString()}`);
    return m;
  }

  /** Waits until the given members (default: the running ones) report healthy. */
  async waitHealthy(
    members: readonly EtcdMember[] = this.members.filter((m) => m.running),
    timeoutMs = 20_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(members.map((m) => m.healthy()));
      if (states.every(Boolean)) return;
      const down = members.filter((_, i) => !states[i]);
      if (down.some((m) => !m.running))
        throw new Error(`etcd member ${down.find((m) => !m.running)!.name} exited:\n${down[0]!.logTail()}`);
      if (Date.now() > deadline)
        throw new Error(
          `etcd members ${down.map((m) => m.name).join(', ')} not healthy in ${timeoutMs} ms:\n${down[0]!.logTail()}`,
        );
      await sleep(50);
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop('SIGKILL')));
  }
}

/** Starts one etcd member on each of the given hosts (3 for a real quorum) and waits until healthy. */
export async function startEtcd(net: NetHosts, hosts: readonly Host[]): Promise<EtcdCluster> {
  if (hosts.length === 0) throw new Error('startEtcd needs at least one host');
  const names = hosts.map((h) => `etcd${h.index}`);
  const initial = hosts.map((h, i) => `${names[i]}=http://${h.addr}:${ETCD_PEER_PORT}`).join(',');
  const members = hosts.map((h, i) => new EtcdMember(names[i]!, h, net.dir, initial, net.run));
  const cluster = new EtcdCluster(members);
  try {
    for (const m of members) await m.start();
    await cluster.waitHealthy();
  } catch (e) {
    await cluster.stopAll();
    throw e;
  }
  return cluster;
}
