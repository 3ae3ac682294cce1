/**
 * A real, single-member etcd for integration tests: Debian's /usr/bin/etcd (or PGSCALE_TEST_ETCD)
 * on two free ports of 127.0.0.1, data in a temporary directory, fsync off and short raft timings
 * (heartbeat 50 ms, election 500 ms, which also lowers etcd's minimum lease TTL to 1 s). It can
 * be killed, paused and started again on the same ports and data, and is always cleaned up: the
 * process is killed even if the test process exits without running its hooks.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { tempDir } from './harness.js';

export const ETCD_BIN = process.env.PGSCALE_TEST_ETCD ?? '/usr/bin/etcd';

/** Why the etcd tests are skipped, or false when they can run. */
export function etcdSkipReason(): string | false {
  return existsSync(ETCD_BIN)
    ? false
    : `${ETCD_BIN} not found: install Debian's etcd-server or set PGSCALE_TEST_ETCD`;
}

export class EtcdProcess {
  readonly url: string;
  private child: ChildProcess | null = null;
  private readonly killOnExit = () => this.child?.kill('SIGKILL');

  private constructor(
    readonly dir: string,
    private readonly clientPort: number,
    private readonly peerPort: number,
  ) {
    this.url = `http://127.0.0.1:${clientPort}`;
    process.on('exit', this.killOnExit);
  }

  static async start(): Promise<EtcdProcess> {
    const port = await findFreePortBlock(2);
    const etcd = new EtcdProcess(tempDir('pgscale-etcd-'), port, port + 1);
    try {
      await etcd.start();
    } catch (e) {
      await etcd.cleanup();
      throw e;
    }
    return etcd;
  }

  /** Starts (again) on the same ports and data directory; resolves once /health says true. */
  async start(): Promise<void> {
    if (this.child) throw new Error('etcd is already running');
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const log = openSync(join(this.dir, 'etcd.log'), 'a');
    const child = spawn(
      ETCD_BIN,
      [
        '--name=test',
        `--data-dir=${join(this.dir, 'data')}`,
        `--listen-client-urls=${this.url}`,
        `--advertise-client-urls=${this.url}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=test=${peer}`,
        '--heartbeat-interval=50',
        '--election-timeout=500',
        '--unsafe-no-fsync',
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    this.child = child;
    let exited = false;
    child.once('exit', () => {
      exited = true;
      if (this.child === child) this.child = null;
    });
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (exited) throw new Error(`etcd exited at start-up:\n${this.logTail()}`);
      try {
        const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
        if (((await res.json()) as { health?: string }).health === 'true') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy in 20 s:\n${this.logTail()}`);
      await sleep(50);
    }
  }

  /** Kills the process (SIGKILL by default) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }

  /**
   * SIGSTOP, and waits until every thread has actually stopped: kill() returns before that, and a
   * thread already on a CPU could still answer a request sent right after.
   */
  async pause(): Promise<void> {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    this.child?.kill('SIGSTOP');
    const tasks = `/proc/${pid}/task`;
    if (!existsSync(tasks)) return void (await sleep(200));
    const state = (tid: string) => {
      try {
        // The state follows the command name in parentheses, which may itself contain spaces.
        const stat = readFileSync(join(tasks, tid, 'stat'), 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      } catch {
        return 'T'; // the thread is gone
      }
    };
    const deadline = Date.now() + 5000;
    while (!readdirSync(tasks).every((tid) => ['T', 't'].includes(state(tid)))) {
      if (Date.now() > deadline) throw new Error(`etcd (pid ${pid}) did not stop after SIGSTOP`);
      await sleep(5);
    }
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** A gateway call without the store under test (for setting up users, reading raw keys). */
  async call(path: string, body: unknown, token?: string): Promise<unknown> {
    const res = await fetch(`${this.url}${path}`, {
      method: 'POST',
      headers: token ? { authorization: token } : {},
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const json: unknown = await res.json();
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  logTail(): string {
    try {
      return readFileSync(join(this.dir, 'etcd.log'), 'utf8').split('\n').slice(-20).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async cleanup(): Promise<void> {
    this.resume();
    await this.stop();
    process.off('exit', this.killOnExit);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
