/**
 * The benchmarks' CPU caps: src/demo/cpu-caps.ts (one cgroup per PostgreSQL node with the same
 * CFS quota), with groups named `pgscale-bench-<pid>` and removal registered for cleanup (end of
 * run, exception, Ctrl-C).
 */
import { createCpuCaps as create } from '../src/demo/cpu-caps.js';
import type { CpuCaps } from '../src/demo/cpu-caps.js';
import { onCleanup } from './cleanup.js';

export { capsUnavailable, processTree } from '../src/demo/cpu-caps.js';
export type { CapStat, CpuCaps } from '../src/demo/cpu-caps.js';

export function createCpuCaps(groups: readonly string[], quotaUs: number, periodUs = 100_000): CpuCaps {
  const caps = create('pgscale-bench', groups, quotaUs, periodUs, (l) =>
    process.stderr.write(`bench: ${l}\n`),
  );
  const forget = onCleanup(
    'cgroups',
    () => Promise.resolve(caps.remove()),
    () => caps.remove(),
  );
  return {
    ...caps,
    remove() {
      caps.remove();
      forget();
    },
  };
}
