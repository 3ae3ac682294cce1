/**
 * Reading a V8 `.cpuprofile` (what `node --cpu-prof` writes): the functions with the most self
 * time, i.e. samples whose top frame was that function. Self time is summed per function
 * (name, file, line), over every node of the call tree where it appears; `(idle)`, `(program)`
 * and `(garbage collector)` are kept, since on a loaded proxy they say where the rest went.
 * Usage on its own: `node --import tsx bench/cpuprofile.ts FILE.cpuprofile [N]`.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../test/harness.js';

interface ProfileNode {
  id: number;
  hitCount?: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

export interface SelfTime {
  fn: string;
  /** file:line (1-based), relative to the repository when inside it. */
  where: string;
  hits: number;
  /** Share of all samples, 0..1. */
  share: number;
  /** Share of the samples that were not `(idle)`, 0..1 (null for `(idle)` itself). */
  busyShare: number | null;
}

function location(url: string, line: number): string {
  if (!url) return '';
  let path = url;
  if (url.startsWith('file://')) {
    try {
      path = relative(repoRoot, fileURLToPath(url));
    } catch {
      /* keep the url */
    }
  }
  return `${path}:${line + 1}`;
}

/** The `n` functions with the most self samples, and the profile's total and idle samples. */
export function topSelf(
  profile: CpuProfile,
  n = 25,
): { total: number; idle: number; durationS: number; top: SelfTime[] } {
  const byKey = new Map<string, { fn: string; where: string; hits: number }>();
  let total = 0;
  let idle = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    total += hits;
    const cf = node.callFrame;
    const fn = cf.functionName || '(anonymous)';
    if (fn === '(idle)') idle += hits;
    const where = location(cf.url, cf.lineNumber);
    const key = `${fn}\0${where}`;
    const e = byKey.get(key);
    if (e) e.hits += hits;
    else byKey.set(key, { fn, where, hits });
  }
  const busy = total - idle;
  const top = [...byKey.values()]
    .sort((a, b) => b.hits - a.hits)
    .slice(0, n)
    .map((e) => ({
      ...e,
      share: total ? e.hits / total : 0,
      busyShare: e.fn === '(idle)' || !busy ? null : e.hits / busy,
    }));
  return { total, idle, durationS: (profile.endTime - profile.startTime) / 1e6, top };
}

/** A plain-text table of topSelf()'s answer for one file. */
export function summarizeProfile(file: string, n = 25): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const s = topSelf(p, n);
  const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
  const lines = [
    `${file}: ${s.total} samples over ${s.durationS.toFixed(1)} s, ${pct(s.total ? s.idle / s.total : 0)} idle`,
    'self%  busy%  function                              location',
    ...s.top.map(
      (t) => `${pct(t.share).padStart(5)}  ${pct(t.busyShare).padStart(5)}  ${t.fn.padEnd(36)}  ${t.where}`,
    ),
  ];
  return lines.join('\n');
}

/**
 * Self time per statement, by function, of two sets of profiles (each file with the statements
 * its run completed): µs per statement in `a` and in `b` and their difference, the functions
 * with the largest differences first. A sample's time is the profile's duration over its samples.
 */
export function compareProfiles(
  a: readonly { file: string; statements: number }[],
  b: readonly { file: string; statements: number }[],
  n = 30,
): string {
  const perStatement = (set: readonly { file: string; statements: number }[]) => {
    const us = new Map<string, number>();
    let statements = 0;
    for (const { statements: s } of set) statements += s;
    for (const { file } of set) {
      const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
      const s = topSelf(p, Number.MAX_SAFE_INTEGER);
      const usPerSample = s.total ? (s.durationS * 1e6) / s.total : 0;
      for (const t of s.top) {
        if (t.fn === '(idle)') continue;
        const k = `${t.fn}  ${t.where}`;
        us.set(k, (us.get(k) ?? 0) + (t.hits * usPerSample) / Math.max(1, statements));
      }
    }
    return us;
  };
  const ua = perStatement(a);
  const ub = perStatement(b);
  const keys = new Set([...ua.keys(), ...ub.keys()]);
  const rows = [...keys]
    .map((k) => ({ k, a: ua.get(k) ?? 0, b: ub.get(k) ?? 0 }))
    .sort((x, y) => Math.abs(y.a - y.b) - Math.abs(x.a - x.b));
  const sum = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0);
  return [
    `profiled self time, µs per statement (profiler included): sharded ${sum(ua).toFixed(1)}, unsharded ${sum(ub).toFixed(1)}`,
    '  sharded  unsharded   diff  function  location',
    ...rows
      .slice(0, n)
      .map(
        (r) =>
          `${r.a.toFixed(2).padStart(9)}  ${r.b.toFixed(2).padStart(9)}  ${(r.a - r.b).toFixed(2).padStart(6)}  ${r.k}`,
      ),
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node --import tsx bench/cpuprofile.ts FILE.cpuprofile [N]\n');
    process.exitCode = 2;
  } else {
    process.stdout.write(summarizeProfile(file, n ? Number(n) : 25) + '\n');
  }
}
