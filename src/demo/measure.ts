/**
 * Small measurements from /proc for the demo's figures: how busy the host's cores were over a
 * period (/proc/stat), and how much memory a PostgreSQL node's processes use (the sum of their
 * proportional set sizes from /proc/<pid>/smaps_rollup, so that shared buffers are counted once
 * across the processes that share them, not once per process as RSS would). Linux only; other
 * systems get null. https://man7.org/linux/man-pages/man5/proc.5.html
 */
import { readFileSync } from 'node:fs';
import { processTree } from './cpu-caps.js';

function cpuTicks(): { busy: number; total: number } | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/** Starts measuring; the returned function gives the share (0–1) of all cores busy since, or null. */
export function hostBusyMeter(): () => number | null {
  const a = cpuTicks();
  return () => {
    const b = cpuTicks();
    if (!a || !b || b.total <= a.total) return null;
    return (b.busy - a.busy) / (b.total - a.total);
  };
}

function kbField(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Memory of a process and all its descendants: sum of PSS (and of RSS), bytes; null if unreadable. */
export function treeMemory(rootPid: number): { pss: number; rss: number; processes: number } | null {
  let pss = 0;
  let rss = 0;
  let processes = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      pss += kbField(t, 'Pss');
      rss += kbField(t, 'Rss');
      processes++;
    } catch {
      // exited meanwhile, or no smaps_rollup (Linux < 4.14)
    }
  }
  return processes > 0 ? { pss, rss, processes } : null;
}
