/**
 * "Hosts" as Linux network namespaces for multi-host fault tests (issue #18). `NetHosts.create`
 * builds a bridge in the root namespace (with an address, so the test process reaches every
 * host) and n namespaces, each with a veth into the bridge, loopback up and one address from a
 * private /24 chosen per run (10.X.Y.0/24, random, never overlapping a route the machine has).
 * No NAT and no default route: a host reaches the other hosts and the root namespace, nothing
 * else. Faults: `host.kill()` SIGKILLs every process in the namespace at once (the whole host
 * died, children included); `cut()`/`heal()` take the host's veth down/up on the bridge side
 * (a pulled cable: packets vanish, no reset); `block()` drops traffic with one peer (optionally
 * some TCP ports only) with iptables inside the namespace (catalogue F6: cut off from etcd but
 * not from the proxies). Names are `<prefix><run id>{br,v<i>,h<i>}` (≤ 15 characters); a state
 * file per run records its owner pid, so a later run sweeps what a killed run left behind, never
 * a live run's. Everything is removed by `destroy()` and, as a safety net, at process exit.
 * Needs root and `ip netns`; `netnsSkipReason()` says why not.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import {
  closeSync,
  fchownSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanEnv, serviceUser } from '../src/cluster/run-as.js';
import { tempDir } from './harness.js';

const STATE_DIR = join(tmpdir(), 'pgscale-netns');
const BRIDGE_HOST = 254;

/** Why namespace tests cannot run here, or false when they can. */
export function netnsSkipReason(): string | false {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root (CI runs as root)';
  const probe = `pgsprobe${process.pid}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.status !== 0)
    return `"ip netns add" failed: ${(add.stderr || add.error?.message || '').trim() || 'no ip command'}`;
  spawnSync('ip', ['netns', 'del', probe]);
  if (spawnSync('iptables', ['-V']).status !== 0)
    return 'iptables is not available (Debian package iptables)';
  return false;
}

/** Runs `ip`/`iptables` synchronously; throws with its stderr unless `allowFail`. */
function sh(cmd: string, args: string[], allowFail = false): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0 && !allowFail)
    throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
  return r.stdout ?? '';
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The pids of every process in a namespace (zombies are not listed). */
function nsPids(ns: string): number[] {
  return sh('ip', ['netns', 'pids', ns], true)
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((p) => p > 0 && p !== process.pid);
}

/** SIGKILLs a namespace's processes until none is left (a dying parent may still fork). */
function killNamespace(ns: string): void {
  for (let round = 0; round < 50; round++) {
    const pids = nsPids(ns);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

export interface SpawnOptions {
  /** Run as the unprivileged user PostgreSQL runs as (when we are root; see run-as.ts). */
  readonly asPgUser?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Append stdout and stderr to this file (else they are ignored unless `stdio` says). */
  readonly logFile?: string;
  readonly stdio?: StdioOptions;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Where a block applies: another host, or an address. */
export type Peer = Host | string;

export class Host {
  private readonly children = new Set<ChildProcess>();
  private readonly rules: string[][] = [];

  constructor(
    /** 1-based position; the address ends with it. */
    readonly index: number,
    /** Namespace name, for `ip netns exec`. */
    readonly ns: string,
    /** The host's address on the bridge. */
    readonly addr: string,
    /** The bridge-side end of the host's veth (what cut() takes down). */
    readonly veth: string,
  ) {}

  /** Starts a process inside the namespace, tracked for cleanup. */
  spawn(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const user = opts.asPgUser ? serviceUser() : null;
    const prefix = user
      ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--']
      : [];
    let stdio: StdioOptions = opts.stdio ?? 'ignore';
    let fd: number | null = null;
    if (opts.logFile) {
      fd = openAppend(opts.logFile, user);
      stdio = ['ignore', fd, fd];
    }
    // `ip netns exec` and setpriv exec, so the child's pid is the command's own.
    const child = spawn('ip', ['netns', 'exec', this.ns, ...prefix, cmd, ...args], {
      cwd: opts.cwd ?? '/',
      env: { ...cleanEnv(), ...opts.env },
      stdio,
    });
    // The child has its own copy of the descriptor.
    if (fd !== null) closeSync(fd);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.on('error', () => this.children.delete(child));
    return child;
  }

  /** Runs a command inside the namespace to completion; rejects on a non-zero exit unless allowFail. */
  run(
    cmd: string,
    args: readonly string[],
    opts: SpawnOptions & { allowFail?: boolean; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    const child = this.spawn(cmd, args, { ...opts, logFile: undefined, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    return new Promise((resolve, reject) => {
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const res = { code: code ?? -1, stdout, stderr };
        if (code === 0 || opts.allowFail) resolve(res);
        else
          reject(
            new Error(
              `${cmd} on ${this.ns} ${signal ? `killed (${signal})` : `exited ${code}`}: ${stderr.trim().slice(-500)}`,
            ),
          );
      });
    });
  }

  /** Every process in the namespace, ours or not (children of children included). */
  pids(): number[] {
    return nsPids(this.ns);
  }

  /** The whole host dies: SIGKILL to every process at once; resolves when none is left. */
  async kill(): Promise<void> {
    killNamespace(this.ns);
    // Let Node reap the children it spawned, so their 'exit' handlers have run.
    const deadline = Date.now() + 5000;
    while (this.children.size > 0 && Date.now() < deadline) await sleep(5);
  }

  /** Takes the host's link down on the bridge: nothing goes in or out until heal(). */
  cut(): void {
    sh('ip', ['link', 'set', this.veth, 'down']);
  }

  heal(): void {
    sh('ip', ['link', 'set', this.veth, 'up']);
  }

  /**
   * Drops all traffic between this host and `peer` (both directions), or only TCP to and from
   * the given ports on either side (e.g. [2379, 2380]: etcd's client and peer ports), with
   * iptables in this host's namespace. Other hosts are unaffected.
   */
  block(peer: Peer, ports?: readonly number[]): void {
    for (const rule of blockRules(peer, ports)) {
      sh('ip', ['netns', 'exec', this.ns, 'iptables', '-A', ...rule]);
      this.rules.push(rule);
    }
  }

  /** Removes the rules of block(peer, ports) (the same arguments), or every block when called bare. */
  unblock(peer?: Peer, ports?: readonly number[]): void {
    const which = peer === undefined ? [...this.rules] : blockRules(peer, ports);
    for (const rule of which) {
      const at = this.rules.findIndex((r) => r.join(' ') === rule.join(' '));
      if (at < 0) continue;
      sh('ip', ['netns', 'exec', this.ns, 'iptables', '-D', ...rule]);
      this.rules.splice(at, 1);
    }
  }

  toString(): string {
    return `${this.ns} (${this.addr})`;
  }
}

function blockRules(peer: Peer, ports?: readonly number[]): string[][] {
  const addr = typeof peer === 'string' ? peer : peer.addr;
  if (!ports || ports.length === 0)
    return [
      ['INPUT', '-s', addr, '-j', 'DROP'],
      ['OUTPUT', '-d', addr, '-j', 'DROP'],
    ];
  const list = ports.join(',');
  const rules: string[][] = [];
  for (const dir of ['--dports', '--sports']) {
    rules.push(['INPUT', '-s', addr, '-p', 'tcp', '-m', 'multiport', dir, list, '-j', 'DROP']);
    rules.push(['OUTPUT', '-d', addr, '-p', 'tcp', '-m', 'multiport', dir, list, '-j', 'DROP']);
  }
  return rules;
}

/** A log file the process's user owns (it may reopen it, e.g. pg_ctl -l). */
function openAppend(file: string, user: { uid: number; gid: number } | null): number {
  const fd = openSync(file, 'a');
  if (user) fchownSync(fd, user.uid, user.gid);
  return fd;
}

export interface NetHostsOptions {
  /** How many hosts (namespaces); 1 to 20. */
  readonly hosts: number;
  /** Name prefix of this suite's resources: lowercase, ≤ 6 characters (default "pgt"). */
  readonly prefix?: string;
}

interface RunState {
  readonly pid: number;
  readonly dir: string;
}

const live = new Set<NetHosts>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const n of [...live]) n.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const n of [...live]) n.destroySync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

export class NetHosts {
  /** The bridge's address: the root namespace (this test process) as seen from the hosts. */
  readonly bridgeAddr: string;
  private destroyed = false;

  private constructor(
    /** `<prefix><run id>`: every resource name of this run starts with it. */
    readonly run: string,
    readonly bridge: string,
    /** e.g. 10.143.27 (the /24's first three octets). */
    readonly net: string,
    readonly hosts: readonly Host[],
    /** A temporary directory of this run (mode 0755), removed by destroy(): data dirs, logs. */
    readonly dir: string,
    private readonly stateFile: string,
  ) {
    this.bridgeAddr = `${net}.${BRIDGE_HOST}`;
  }

  static async create(opts: NetHostsOptions): Promise<NetHosts> {
    const prefix = opts.prefix ?? 'pgt';
    if (!/^[a-z][a-z0-9]{0,5}$/.test(prefix))
      throw new Error(`netns prefix "${prefix}": 1 to 6 lowercase letters or digits, starting with a letter`);
    if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 20)
      throw new Error(`netns hosts: 1 to 20, not ${opts.hosts}`);
    NetHosts.sweep(prefix);
    const existing = new Set(listLinks());
    let id = randomBytes(2).toString('hex');
    while (existing.has(`${prefix}${id}br`)) id = randomBytes(2).toString('hex');
    const run = `${prefix}${id}`;
    const net = freeSubnet();
    const dir = tempDir(`pgscale-netns-${run}-`);
    mkdirSync(STATE_DIR, { recursive: true });
    const stateFile = join(STATE_DIR, `${run}.json`);
    // Written before any resource exists, so a sweep never takes a live run for a leftover.
    writeFileSync(stateFile, JSON.stringify({ pid: process.pid, dir } satisfies RunState));
    const hosts = Array.from(
      { length: opts.hosts },
      (_, i) => new Host(i + 1, `${run}h${i + 1}`, `${net}.${i + 1}`, `${run}v${i + 1}`),
    );
    const n = new NetHosts(run, `${run}br`, net, hosts, dir, stateFile);
    installExitHook();
    live.add(n);
    try {
      n.build();
    } catch (e) {
      n.destroySync();
      throw e;
    }
    return Promise.resolve(n);
  }

  private build(): void {
    sh('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
    sh('ip', ['addr', 'add', `${this.bridgeAddr}/24`, 'dev', this.bridge]);
    sh('ip', ['link', 'set', this.bridge, 'up']);
    // With br_netfilter loaded, frames between two ports of the bridge pass the root namespace's
    // FORWARD chain: where its policy drops (Docker sets that), let this bridge's traffic through.
    if (!/^-P FORWARD ACCEPT/m.test(sh('iptables', ['-S', 'FORWARD'], true)))
      sh('iptables', ['-I', ...forwardRule(this.bridge)]);
    for (const h of this.hosts) {
      sh('ip', ['netns', 'add', h.ns]);
      const peer = `${this.run}p${h.index}`;
      sh('ip', ['link', 'add', h.veth, 'type', 'veth', 'peer', 'name', peer]);
      sh('ip', ['link', 'set', h.veth, 'master', this.bridge, 'up']);
      sh('ip', ['link', 'set', peer, 'netns', h.ns]);
      sh('ip', ['-n', h.ns, 'link', 'set', peer, 'name', 'eth0']);
      sh('ip', ['-n', h.ns, 'addr', 'add', `${h.addr}/24`, 'dev', 'eth0']);
      sh('ip', ['-n', h.ns, 'link', 'set', 'eth0', 'up']);
      sh('ip', ['-n', h.ns, 'link', 'set', 'lo', 'up']);
    }
  }

  host(i: number): Host {
    const h = this.hosts[i - 1];
    if (!h) throw new Error(`no host ${i} (hosts are 1..${this.hosts.length})`);
    return h;
  }

  async destroy(): Promise<void> {
    this.destroySync();
    return Promise.resolve();
  }

  /** Synchronous, for process exit: processes, namespaces (with their veths and rules), bridge, files. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    removeRun(
      this.run,
      this.hosts.map((h) => h.ns),
      this.dir,
    );
    rmSync(this.stateFile, { force: true });
    // The shared state directory goes with the last run (another run's file keeps it).
    try {
      rmdirSync(STATE_DIR);
    } catch {
      // not empty: another run is going on
    }
  }

  /**
   * Removes what runs with this prefix left behind when their process was killed: their state
   * file names a dead pid, or is missing. Live runs (another test file, another suite) are kept.
   */
  static sweep(prefix: string): void {
    const pattern = new RegExp(`^(${prefix}[0-9a-f]{4})(br|v\\d+|h\\d+)$`);
    const runs = new Map<string, string[]>();
    const note = (name: string) => {
      const m = pattern.exec(name);
      if (!m) return null;
      const list = runs.get(m[1]!) ?? [];
      runs.set(m[1]!, list);
      return { run: m[1]!, list };
    };
    for (const name of sh('ip', ['netns', 'list'], true).split('\n')) {
      const ns = name.split(' ')[0] ?? '';
      note(ns)?.list.push(ns);
    }
    for (const link of listLinks()) note(link);
    let files: string[] = [];
    try {
      files = readdirSync(STATE_DIR).filter((f) => f.startsWith(prefix) && f.endsWith('.json'));
    } catch {
      // no state directory yet
    }
    for (const f of files) if (pattern.test(`${f.slice(0, -5)}br`)) note(`${f.slice(0, -5)}br`);
    for (const [run, namespaces] of runs) {
      const file = join(STATE_DIR, `${run}.json`);
      let state: RunState | null = null;
      try {
        state = JSON.parse(readFileSync(file, 'utf8')) as RunState;
      } catch {
        // no state: a leftover from before the file was written, or of a deleted one
      }
      if (state && alive(state.pid)) continue;
      removeRun(run, namespaces, state?.dir ?? null);
      rmSync(file, { force: true });
    }
  }
}

function removeRun(run: string, namespaces: readonly string[], dir: string | null): void {
  for (const ns of namespaces) killNamespace(ns);
  // Deleting a namespace deletes its end of each veth, and with it the bridge-side end.
  for (const ns of namespaces) sh('ip', ['netns', 'del', ns], true);
  for (const link of listLinks()) if (link.startsWith(run)) sh('ip', ['link', 'del', link], true);
  if (sh('iptables', ['-S', 'FORWARD'], true).includes(`-i ${run}br `))
    sh('iptables', ['-D', ...forwardRule(`${run}br`)], true);
  if (dir) rmSync(dir, { recursive: true, force: true });
}

function forwardRule(bridge: string): string[] {
  return ['FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT'];
}

function listLinks(): string[] {
  return sh('ip', ['-o', 'link', 'show'], true)
    .split('\n')
    .map((l) => /^\d+: ([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined);
}

/** A random 10.X.Y.0/24 that overlaps no route or address of the root namespace. */
function freeSubnet(): string {
  const taken = sh('ip', ['-4', 'route', 'show', 'table', 'all'], true)
    .split('\n')
    .concat(sh('ip', ['-4', '-o', 'addr', 'show'], true).split('\n'))
    .map((l) => /(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?/.exec(l.replace(/^\S*\s*(local|broadcast)\s+/, '')))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ base: ipNum(m[1]!), bits: Number(m[2] ?? 32) }))
    // A default route (0.0.0.0/0) is not an overlap: we never route through it.
    .filter((r) => r.bits > 0);
  for (let attempt = 0; attempt < 200; attempt++) {
    const net = `10.${randomInt(16, 250)}.${randomInt(1, 250)}`;
    const base = ipNum(`${net}.0`);
    const clash = taken.some((r) => {
      const bits = Math.min(r.bits, 24);
      const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
      return (r.base & mask) >>> 0 === (base & mask) >>> 0;
    });
    if (!clash) return net;
  }
  throw new Error('no free 10.X.Y.0/24 found for the test network');
}

function ipNum(ip: string): number {
  return ip.split('.').reduce((n, o) => ((n << 8) | Number(o)) >>> 0, 0);
}
