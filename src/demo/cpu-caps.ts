/**
 * CPU caps for PostgreSQL nodes with the cgroup v1 cpu controller, to emulate separate
 * machines on one host (the demo and the benchmarks): one cgroup per node under
 * `/sys/fs/cgroup/cpu/<prefix>-<our pid>/<node>`, each with the same CFS quota
 * (`cpu.cfs_quota_us` per `cpu.cfs_period_us`), holding the node's postmaster and every process
 * it forked. Backends forked later inherit the postmaster's cgroup, so moving the postmaster
 * before the workload is what matters; existing children are moved too. When the cpuacct
 * controller is mounted separately, a twin group there measures the CPU each node really used.
 * Removal moves the processes back to the root cgroups first, then deletes the groups; it is
 * synchronous, so the caller can register it for every way out (end of run, exception, Ctrl-C).
 * https://docs.kernel.org/scheduler/sched-bwc.html (CFS bandwidth control).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CPU_ROOT = '/sys/fs/cgroup/cpu';
const CPUACCT_ROOT = '/sys/fs/cgroup/cpuacct';

export interface CapStat {
  /** CFS periods in which the group ran, and in how many of them it hit its quota. */
  nrPeriods: number;
  nrThrottled: number;
  throttledNs: number;
  /** CPU time used by the group (cpuacct.usage), or null without cpuacct. */
  usageNs: number | null;
}

export interface CpuCaps {
  readonly quotaUs: number;
  readonly periodUs: number;
  /** Where the groups live, for the report. */
  readonly path: string;
  /**
   * Moves `rootPid` and all its descendants into `group`'s cgroup(s); returns how many processes
   * were moved (already members count too).
   */
  move(group: string, rootPid: number): number;
  /** Processes of the tree under `rootPid` that are not (or no longer) in `group`'s cpu cgroup. */
  strays(group: string, rootPid: number): number[];
  stat(group: string): CapStat;
  /** Creates `group`'s cgroup(s) with the same quota when it has none yet (a node added later). */
  ensure(group: string): void;
  /** Moves every process back to the root groups and deletes ours; idempotent. */
  remove(): void;
}

/** Why CPU caps cannot be used here, or null when they can. */
export function capsUnavailable(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (!existsSync(join(CPU_ROOT, 'cpu.cfs_quota_us')))
    return `no cgroup v1 cpu controller with CFS bandwidth control at ${CPU_ROOT}`;
  if (process.getuid?.() !== 0) return 'not root (cannot create cgroups)';
  return null;
}

/** Every process's parent, from /proc/<pid>/stat (the field after the parenthesised name). */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      out.set(Number(e), Number(rest[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** `root` and all its descendants that exist now. */
export function processTree(root: number): number[] {
  const pp = parents();
  if (!pp.has(root)) return [];
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of pp) {
    const l = children.get(ppid);
    if (l) l.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** The process's path in the v1 hierarchy of `controller` (from /proc/<pid>/cgroup). */
function cgroupOf(pid: number, controller: string): string | null {
  try {
    for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
      const [, ctrls, path] = line.split(':');
      if (ctrls?.split(',').includes(controller)) return path ?? null;
    }
  } catch {
    /* exited */
  }
  return null;
}

/** Blocks for `ms` (cleanup must also work from a synchronous exit handler). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Whether the process is a zombie or dying (state Z or X in /proc/<pid>/stat), or gone. */
function exiting(pid: number): boolean {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZXx]/.test(s.slice(s.lastIndexOf(')') + 2));
  } catch {
    return true;
  }
}

function readNum(file: string): number {
  return Number(readFileSync(file, 'utf8').trim());
}

function writePid(procsFile: string, pid: number): boolean {
  try {
    writeFileSync(procsFile, `${pid}\n`);
    return true;
  } catch {
    return false; // exited meanwhile, or a kernel thread
  }
}

/**
 * Creates `<prefix>-<pid>/<group>` for each group with the given quota; `warn` hears about a
 * group that could not be removed.
 */
export function createCpuCaps(
  prefix: string,
  groups: readonly string[],
  quotaUs: number,
  periodUs = 100_000,
  warn: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): CpuCaps {
  const why = capsUnavailable();
  if (why) throw new Error(`CPU caps unavailable: ${why}`);
  const parentName = `${prefix}-${process.pid}`;
  const roots = [CPU_ROOT, ...(existsSync(join(CPUACCT_ROOT, 'cpuacct.usage')) ? [CPUACCT_ROOT] : [])];
  const created: string[] = [];
  const remove = () => {
    // Children first, then the parent: move every process back to the root group, then rmdir.
    for (const dir of [...created].reverse()) {
      const root = dir.startsWith(CPUACCT_ROOT) ? CPUACCT_ROOT : CPU_ROOT;
      // rmdir fails with EBUSY while a task is still accounted to the group, which includes
      // processes that are exiting (backends of a proxy pool just closed): retry for a while.
      const deadline = Date.now() + 10_000;
      for (;;) {
        let procs: number[] = [];
        try {
          procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
        } catch {
          break;
        }
        for (const p of procs) writePid(join(root, 'cgroup.procs'), p);
        try {
          rmdirSync(dir);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
          if (Date.now() > deadline) {
            warn(`could not remove cgroup ${dir}: ${String(e)}`);
            break;
          }
          sleepSync(50);
        }
      }
    }
    created.length = 0;
  };
  const made = new Set<string>();
  const makeGroup = (g: string) => {
    if (made.has(g)) return;
    for (const root of roots) {
      const dir = join(root, parentName, g);
      mkdirSync(dir);
      created.push(dir);
      if (root === CPU_ROOT) {
        writeFileSync(join(dir, 'cpu.cfs_period_us'), String(periodUs));
        writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quotaUs));
      }
    }
    made.add(g);
  };
  try {
    for (const root of roots) {
      const parent = join(root, parentName);
      mkdirSync(parent);
      created.push(parent);
    }
    for (const g of groups) makeGroup(g);
  } catch (e) {
    remove();
    throw e;
  }
  const dirsOf = (g: string) => roots.map((r) => join(r, parentName, g));
  return {
    quotaUs,
    periodUs,
    path: join(CPU_ROOT, parentName),
    move(group, rootPid) {
      let n = 0;
      for (const pid of processTree(rootPid)) {
        let ok = true;
        for (const d of dirsOf(group)) ok = writePid(join(d, 'cgroup.procs'), pid) && ok;
        if (ok) n++;
      }
      return n;
    },
    strays(group, rootPid) {
      const want = `/${parentName}/${group}`;
      return processTree(rootPid).filter((p) => {
        // An exiting process (a backend of a pool just closed) shows the root group: not a stray.
        if (exiting(p)) return false;
        const g = cgroupOf(p, 'cpu');
        return g !== null && g !== want;
      });
    },
    stat(group) {
      const [cpuDir, acctDir] = dirsOf(group);
      const kv = new Map(
        readFileSync(join(cpuDir!, 'cpu.stat'), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => {
            const [k, v] = l.split(' ');
            return [k!, Number(v)] as const;
          }),
      );
      return {
        nrPeriods: kv.get('nr_periods') ?? 0,
        nrThrottled: kv.get('nr_throttled') ?? 0,
        throttledNs: kv.get('throttled_time') ?? 0,
        usageNs: acctDir ? readNum(join(acctDir, 'cpuacct.usage')) : null,
      };
    },
    ensure: makeGroup,
    remove,
  };
}
