/**
 * `pgscale demo`: the first command a new user runs. Builds a cluster on this machine, shows each
 * benefit with numbers measured in the same run, writes a report and removes everything
 * (src/demo/run.ts does the work; docs/demo.md explains the scenarios and the report).
 */
import { runDemo } from '../../demo/run.js';
import { SCENARIOS } from '../../demo/scenarios/index.js';
import { UsageError } from '../../errors.js';
import { parse } from '../args.js';
import { out } from '../context.js';

export const help = `Usage: pgscale demo [--quick] [--keep] [--report DIR] [--node-cpu CORES] [--only IDS] [--runs N] [--tmp-dir DIR]

Builds a cluster on this machine (a primary and two streaming replicas, in a temporary
directory on free ports; then, for the sharding scenarios, groups of one primary each), runs the scenarios below with a live progress line each, prints a
summary with figures measured in this run, writes a report (DIR/index.html, self-contained, and
DIR/results.json) and removes the cluster, also on Ctrl-C or failure. Takes up to 5 minutes (per run).

Scenarios:
${SCENARIOS.map((s, i) => `  ${i + 1}. ${s.id.padEnd(18)} ${s.title}`).join('\n')}

Each node is capped to the same CPU share (cgroup cpu controller, as root on Linux) so that one
host behaves like several small machines; where that is impossible the demo says so.

Options:
  --quick            a short version (about a minute), for a first look and for tests
  --keep             leave the cluster running afterwards, to explore it
  --report DIR       where to write the report (default ./pgscale-report)
  --node-cpu CORES   CPU share of each node (default 0.25; 0: no caps)
  --only IDS         run only these scenarios (comma-separated ids)
  --runs N           run each scenario N times; the report shows the spread (default 1)
  --tmp-dir DIR      where to create the cluster's temporary directory (default: the system's)
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('demo', argv, {
    quick: { type: 'boolean' },
    keep: { type: 'boolean' },
    report: { type: 'string' },
    'node-cpu': { type: 'string' },
    only: { type: 'string' },
    runs: { type: 'string' },
    'tmp-dir': { type: 'string' },
  });
  if (values.help) return (out(help), 0);
  if (values.config !== undefined)
    throw new UsageError('pgscale demo builds its own cluster; it takes no -c');
  const cpuText = typeof values['node-cpu'] === 'string' ? values['node-cpu'] : '0.25';
  const nodeCpu = Number(cpuText);
  if (!/^\d*\.?\d+$/.test(cpuText) || (nodeCpu !== 0 && (nodeCpu < 0.01 || nodeCpu > 64)))
    throw new UsageError(`--node-cpu must be 0 or a number of cores from 0.01 to 64, got "${cpuText}"`);
  const runsText = typeof values.runs === 'string' ? values.runs : '1';
  const runs = Number(runsText);
  if (!/^\d+$/.test(runsText) || runs < 1 || runs > 20)
    throw new UsageError(`--runs must be a whole number from 1 to 20, got "${runsText}"`);
  const only =
    typeof values.only === 'string'
      ? values.only
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : [];
  const unknown = only.filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length)
    throw new UsageError(
      `unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.id).join(', ')}`,
    );
  return runDemo({
    quick: values.quick === true,
    keep: values.keep === true,
    reportDir: typeof values.report === 'string' ? values.report : 'pgscale-report',
    nodeCpu,
    only,
    runs,
    ...(typeof values['tmp-dir'] === 'string' ? { tmp: values['tmp-dir'] } : {}),
    command: ['pgscale', 'demo', ...argv].join(' '),
  });
}
