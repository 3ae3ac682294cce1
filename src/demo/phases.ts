/**
 * Where the demo's time goes: the wall time of each phase (cluster start, each scenario and the
 * parts it names — warm-up, measurement, teardown —, the report, the teardown), the host's load
 * average at the start and at the end (the host is shared: a slow phase on a busy host is not a
 * slow demo), and the CPU time the demo's own processes used, from which a run on an idle host
 * can be estimated. Printed as one line at the end of the run and kept in results.json
 * (`timing`), so that the budget (`--quick` under 90 s, a full run under 5 minutes) can be checked.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface PhaseTime {
  name: string;
  seconds: number;
  /** The named parts of a phase (a scenario's stages), in order. */
  parts?: PhaseTime[];
}

export interface Timing {
  /** Wall time of the whole run, seconds. */
  totalSeconds: number;
  /** The host's 1-minute load average when the run started and when it ended. */
  loadAverage: { start: number; end: number };
  /**
   * CPU seconds used by the demo's processes: this process with the children it reaped
   * (controller, proxies, CLI calls), and the PostgreSQL nodes (their cgroups' cpuacct), when known.
   */
  cpuSeconds: { demo: number; nodes: number | null };
  phases: PhaseTime[];
}

const round = (x: number) => Math.round(x * 100) / 100;

export class Phases {
  readonly list: PhaseTime[] = [];
  private current: PhaseTime | null = null;

  /** Times `fn` as a top-level phase; parts timed meanwhile with part() go under it. */
  async time<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const p: PhaseTime = { name, seconds: 0 };
    const outer = this.current;
    this.current = p;
    const t = performance.now();
    try {
      return await fn();
    } finally {
      p.seconds = round((performance.now() - t) / 1000);
      this.current = outer;
      if (outer) (outer.parts ??= []).push(p);
      else this.list.push(p);
    }
  }

  /** Times a part of the current phase (a top-level phase when none runs). */
  part<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.time(name, fn);
  }
}

const s = (x: number) => `${x < 10 ? x.toFixed(1) : x.toFixed(0)} s`;

/** The one line printed at the end of a run: every phase with its parts, the load and CPU time. */
export function timingLine(t: Timing): string {
  const phases = t.phases
    .map(
      (p) =>
        `${p.name} ${s(p.seconds)}${p.parts?.length ? ` (${p.parts.map((q) => `${q.name} ${s(q.seconds)}`).join(', ')})` : ''}`,
    )
    .join('; ');
  const cpu =
    `CPU used by the demo: ${s(t.cpuSeconds.demo)} (demo, controller, proxies)` +
    (t.cpuSeconds.nodes === null ? '' : ` + ${s(t.cpuSeconds.nodes)} (PostgreSQL nodes)`);
  return (
    `Timing: ${s(t.totalSeconds)} in all, load average ${t.loadAverage.start.toFixed(1)} at the start and ` +
    `${t.loadAverage.end.toFixed(1)} at the end; ${cpu}. ${phases}.`
  );
}

/**
 * CPU seconds of this process and of the children it has reaped (the controllers, proxies and
 * CLI calls the demo started), from /proc/self/stat; this process alone where there is no /proc.
 */
export function ownCpuSeconds(): number {
  const own = process.cpuUsage();
  const self = (own.user + own.system) / 1e6;
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // The fields after the parenthesised name: state is field 3, cutime and cstime 16 and 17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[13]) + Number(f[14]);
    return Number.isFinite(ticks) ? round(self + ticks / 100) : round(self);
  } catch {
    return round(self);
  }
}
