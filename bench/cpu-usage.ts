/**
 * Where the CPU went during one benchmark run, from /proc: the host's busy share over all cores
 * (/proc/stat), and the CPU time of given processes (utime + stime of /proc/<pid>/stat) — the
 * proxy, and pgbench, which is found among our children by name and sampled while it runs (it
 * exits before we could read its final figure, so up to one sampling interval is lost) — and how
 * long the proxy waited for a core (schedstat), which shows CPU starvation on a busy host.
 * https://man7.org/linux/man-pages/man5/proc.5.html
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticks: number | null = null;
/** Clock ticks per second (`getconf CLK_TCK`, 100 nearly everywhere). */
function clkTck(): number {
  if (ticks === null) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

interface HostSample {
  busy: number;
  total: number;
}

function hostSample(): HostSample {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is counted in user already)
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** CPU seconds (user + system) used so far by `pid`, or null when it is gone. */
export function procCpuS(pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // After the name: state(0) ppid(1) … utime(11) stime(12).
    return (Number(f[11]) + Number(f[12])) / clkTck();
  } catch {
    return null;
  }
}

/** CPU seconds used so far by `pid`, user and system apart, or null when it is gone. */
export function procCpuSplitS(pid: number): { user: number; system: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) / clkTck(), system: Number(f[12]) / clkTck() };
  } catch {
    return null;
  }
}

/**
 * Seconds `pid`'s threads spent runnable but waiting for a core (second field of
 * /proc/<pid>/task/<tid>/schedstat, ns), summed over its threads; null when it is gone.
 */
export function procWaitS(pid: number): number | null {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
      } catch {
        /* thread gone */
      }
    }
    return ns / 1e9;
  } catch {
    return null;
  }
}

/** Our child processes whose command name is `comm`. */
function childrenNamed(comm: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      if (name === comm && ppid === process.pid) out.push(Number(e));
    } catch {
      /* exited */
    }
  }
  return out;
}

export interface CpuReport {
  wallS: number;
  /** Share of all cores busy on the host (every process, ours and others'), 0–1. */
  hostBusy: number;
  /** Cores' worth of CPU used by the proxy (1.0 = one core all the time), or null. */
  proxyCores: number | null;
  /** The same for pgbench (approximate, see the module comment), or null. */
  pgbenchCores: number | null;
  /**
   * Time the proxy's threads were runnable but not running, per second of wall time (0.5: as
   * much waiting for a core as half a thread's worth of time), or null: CPU starvation.
   */
  proxyRunqueueWait: number | null;
  /** 1-minute load average at the end. */
  load1: number;
}

/** Starts measuring; `stop()` returns the figures since then. */
export function startCpuMeter(proxyPid: number | null): { stop(): CpuReport } {
  const t0 = process.hrtime.bigint();
  const h0 = hostSample();
  const p0 = proxyPid !== null ? procCpuS(proxyPid) : null;
  const w0 = proxyPid !== null ? procWaitS(proxyPid) : null;
  const pgbench = new Map<number, number>();
  const sample = () => {
    for (const pid of childrenNamed('pgbench')) {
      const v = procCpuS(pid);
      if (v !== null) pgbench.set(pid, v);
    }
  };
  const timer = setInterval(sample, 500);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      sample();
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      const h1 = hostSample();
      const p1 = proxyPid !== null ? procCpuS(proxyPid) : null;
      const w1 = proxyPid !== null ? procWaitS(proxyPid) : null;
      const pgbenchS = [...pgbench.values()].reduce((a, b) => a + b, 0);
      return {
        wallS,
        hostBusy: h1.total > h0.total ? (h1.busy - h0.busy) / (h1.total - h0.total) : 0,
        proxyCores: p0 !== null && p1 !== null ? (p1 - p0) / wallS : null,
        pgbenchCores: pgbench.size > 0 ? pgbenchS / wallS : null,
        proxyRunqueueWait: w0 !== null && w1 !== null ? (w1 - w0) / wallS : null,
        load1: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
      };
    },
  };
}
