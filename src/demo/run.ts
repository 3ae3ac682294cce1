/**
 * `pgscale demo`, the run: builds a cluster (a primary and two streaming replicas) in a
 * temporary directory on free ports through pgscale's own controller — and, for the sharding
 * scenarios, a second one of groups with one primary each, once the first is stopped — caps each
 * node to the same CPU share when the machine allows it, runs the scenarios in order (each
 * `--runs` times) with a progress line each,
 * prints a summary, writes the report, and removes everything — at the end, on a failure and on
 * Ctrl-C — unless asked to keep the cluster.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { resolve } from 'node:path';
import { Cleanup } from './cleanup.js';
import { DemoCluster } from './cluster.js';
import { capsUnavailable, createCpuCaps } from './cpu-caps.js';
import type { CpuCaps } from './cpu-caps.js';
import { seconds as secs } from './format.js';
import { createTables } from './load.js';
import { ownCpuSeconds, Phases, timingLine } from './phases.js';
import type { Timing } from './phases.js';
import { createProgress } from './progress.js';
import type { Progress } from './progress.js';
import { writeReport } from './report/html.js';
import type { DemoReport, Environment } from './report/html.js';
import { spread } from './repeat.js';
import type { DemoSettings, ScenarioContext, ScenarioOutcome, ScenarioResult } from './scenario.js';
import { SCENARIOS } from './scenarios/index.js';

export interface DemoOptions {
  quick: boolean;
  keep: boolean;
  /** Directory for index.html and results.json. */
  reportDir: string;
  /** CPU per node in cores; 0 runs uncapped. */
  nodeCpu: number;
  /** Scenario ids to run (all when empty). */
  only: readonly string[];
  /** Runs of each scenario (--runs; default 1): the report shows the spread of its key figures. */
  runs?: number;
  /** Parent of the cluster's temporary directory. */
  tmp?: string;
  /** The command line, for the report. */
  command: string;
  out?: (line: string) => void;
  progress?: Progress;
}

const PERIOD_US = 100_000;

function version(): string {
  try {
    const p = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    return p.version;
  } catch {
    return 'unknown';
  }
}

/**
 * Keeps every node's processes in its cgroup: a restarted node has a new postmaster, a node of a
 * group added later gets a cgroup of its own, and the sharding scenarios' cluster (whose nodes
 * may have the names the replicated cluster's had) takes over the groups when it starts.
 */
function sweeper(caps: CpuCaps, cluster: () => DemoCluster): () => void {
  const known = new Map<string, number>();
  const sweep = () => {
    const c = cluster();
    for (const n of c.nodes()) {
      const pid = c.postmasterPid(n.name);
      if (pid !== null && known.get(n.name) !== pid) {
        caps.ensure(n.name);
        caps.move(n.name, pid);
        known.set(n.name, pid);
      }
    }
  };
  sweep();
  const timer = setInterval(sweep, 1000);
  timer.unref();
  return () => clearInterval(timer);
}

/** CPU seconds the nodes of these clusters used (their cgroups' cpuacct), null when unknown. */
function nodeCpuSeconds(caps: CpuCaps, clusters: readonly (DemoCluster | null)[]): number | null {
  const names = new Set(clusters.flatMap((c) => (c ? c.nodes().map((n) => n.name) : [])));
  let ns = 0;
  try {
    for (const n of names) {
      const u = caps.stat(n).usageNs;
      if (u === null) return null;
      ns += u;
    }
  } catch {
    return null; // a group never created (its node never started)
  }
  return Math.round(ns / 1e7) / 100;
}

export async function runDemo(o: DemoOptions): Promise<number> {
  const out = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const progress = o.progress ?? createProgress();
  const cleanup = new Cleanup((l) => process.stderr.write(`pgscale demo: ${l}\n`));
  cleanup.install((sig) => {
    out(`\n${sig}: stopping the demo and removing its cluster… (again to kill at once)`);
    cleanup.run().then(
      () => process.exit(130),
      () => process.exit(1),
    );
  });
  const t0 = Date.now();
  const phases = new Phases();
  const scenarios = SCENARIOS.filter((s) => o.only.length === 0 || o.only.includes(s.id));
  const runs = Math.max(1, o.runs ?? 1);
  const noCaps = o.nodeCpu === 0 ? 'disabled with --node-cpu 0' : capsUnavailable();
  const coresPerNode = noCaps ? null : o.nodeCpu;
  const settings: DemoSettings = {
    quick: o.quick,
    keys: o.quick ? 20_000 : 100_000,
    nodeCores: coresPerNode,
    loadAtStart: loadavg()[0] ?? 0,
  };
  let code = 0;
  try {
    out(
      `pgscale demo${o.quick ? ' (quick)' : ''}: a primary and 2 streaming replicas on this machine, then up to ` +
        `4 groups of one primary each for sharding; ${scenarios.length} scenario${scenarios.length === 1 ? '' : 's'}` +
        `${runs > 1 ? `, ${runs} runs each` : ''}; everything is removed at the end${o.keep ? ' (except with --keep)' : ''}.`,
    );
    out(
      noCaps
        ? `CPU caps: none (${noCaps}). The nodes share all ${availableParallelism()} cores with each other and the load generator, ` +
            'so the figures do not show what separate machines would: more nodes on one host add no CPU.'
        : `CPU caps: each PostgreSQL node is capped at ${o.nodeCpu} core (cgroup cpu controller), so that this host behaves like several small machines.`,
    );
    const cluster = await DemoCluster.create(
      {
        dir: o.tmp ?? tmpdir(),
        maxConnections: o.quick ? 400 : 1_150,
        // What `pgscale init` gives: asynchronous; the failover scenario switches it on later.
        synchronous: 'off',
      },
      cleanup,
    );
    progress.begin('Starting the cluster');
    await phases.time('cluster start', async () => {
      await cluster.start((s) => progress.update(Math.min(0.95, s / 15), `${s.toFixed(0)} s`));
      await createTables(cluster.endpoint(), settings.keys);
    });
    const nodes = cluster.nodes();
    progress.end(
      'ok',
      `in ${secs((Date.now() - t0) / 1000)}: ${nodes.map((n) => `${n.name} :${n.port}`).join(', ')}; ` +
        `proxy :${cluster.proxyPort}; PostgreSQL ${cluster.postgresVersion()}; ${cluster.dir}`,
    );
    let sharded = null as DemoCluster | null;
    const startSharded = async (): Promise<DemoCluster> => {
      if (sharded) return sharded;
      progress.note(
        `${o.keep ? 'stopping' : 'removing'} the replicated cluster; starting the sharding scenarios' cluster (one primary per group, no standby)`,
      );
      const s = await DemoCluster.create(
        {
          dir: o.tmp ?? tmpdir(),
          maxConnections: 200,
          synchronous: 'off',
          replicas: 0,
          label: 'sharding',
        },
        cleanup,
      );
      // Both at once: the new cluster's initdb while the old one's nodes stop (--keep) or go.
      await phases.part('sharding cluster start', () =>
        Promise.all([o.keep ? cluster.stopController() : cluster.dispose(), s.start()]),
      );
      sharded = s;
      progress.note(`sharding cluster: ${s.dir}`);
      return s;
    };
    let caps: CpuCaps | null = null;
    if (!noCaps) {
      const c = createCpuCaps(
        'pgscale-demo',
        nodes.map((n) => n.name),
        Math.round(o.nodeCpu * PERIOD_US),
        PERIOD_US,
        (l) => process.stderr.write(`pgscale demo: ${l}\n`),
      );
      caps = c;
      cleanup.add(
        'CPU caps',
        () => Promise.resolve(c.remove()),
        () => c.remove(),
      );
      const stopSweeping = sweeper(c, () => sharded ?? cluster);
      cleanup.add('CPU caps sweeper', () => Promise.resolve(stopSweeping()), stopSweeping);
    }
    let writeId = 1;
    const ctx: ScenarioContext = {
      cluster,
      settings,
      progress,
      nextWriteId: (count = 1) => {
        const id = writeId;
        writeId += count;
        return id;
      },
      sharded: startSharded,
      phase: (name, fn) => phases.part(name, fn),
      capProcess: (group, pid) => {
        caps?.ensure(group);
        caps?.move(group, pid);
      },
    };
    const results: ScenarioResult[] = [];
    for (const s of scenarios) {
      const started = Date.now();
      progress.begin(s.title);
      const why = s.unavailable(ctx);
      if (why) {
        results.push({ id: s.id, title: s.title, status: 'skipped', reason: why, seconds: 0 });
        progress.end('skipped', why);
        continue;
      }
      try {
        const outcomes: ScenarioOutcome[] = [];
        await phases.time(s.id, async () => {
          for (let i = 0; i < runs; i++) {
            if (runs > 1) progress.note(`run ${i + 1} of ${runs}`);
            outcomes.push(await s.run(ctx));
          }
        });
        const r = outcomes[0]!;
        const seconds = (Date.now() - started) / 1000;
        results.push({
          id: s.id,
          title: s.title,
          status: 'ok',
          seconds,
          ...r,
          ...(runs > 1 ? { runs, spread: spread(outcomes) } : {}),
        });
        progress.end('ok', `${r.headline} (${secs(seconds)}${runs > 1 ? `, ${runs} runs` : ''})`);
      } catch (e) {
        if (cleanup.interruptedBy) throw e;
        const reason = e instanceof Error ? e.message : String(e);
        results.push({
          id: s.id,
          title: s.title,
          status: 'failed',
          reason,
          seconds: (Date.now() - started) / 1000,
        });
        progress.end('failed', reason);
        code = 1;
      }
    }
    const environment: Environment = {
      date: new Date(t0).toISOString(),
      pgscale: version(),
      command: o.command,
      mode: o.quick ? 'quick' : 'full',
      host: {
        cpu: cpus()[0]?.model.trim() ?? 'unknown',
        cores: availableParallelism(),
        memoryGb: Math.round(totalmem() / 2 ** 30),
        os: type(),
        kernel: release(),
        loadAtStart: settings.loadAtStart,
      },
      node: process.version,
      postgres: { version: cluster.postgresVersion(), source: cluster.source() },
      caps: {
        applied: caps !== null,
        coresPerNode,
        reason: noCaps,
        meaning: noCaps
          ? 'The nodes, the proxy and the load generator share every core of one host: adding a node adds no CPU, so scaling figures understate what separate machines give.'
          : 'The proxy and the load generator are not capped and share the remaining cores; when the host is busy they compete with the nodes, which lowers the scaling figures.',
      },
    };
    const nodeCpu = caps ? nodeCpuSeconds(caps, [cluster, sharded]) : null;
    // The clusters go before the report is written, so that their teardown is in its timing.
    if (!o.keep) await phases.time('teardown', () => cleanup.run());
    const timing: Timing = {
      totalSeconds: (Date.now() - t0) / 1000,
      loadAverage: { start: settings.loadAtStart, end: loadavg()[0] ?? 0 },
      cpuSeconds: { demo: ownCpuSeconds(), nodes: nodeCpu },
      phases: phases.list,
    };
    const report: DemoReport = {
      environment,
      seconds: (Date.now() - t0) / 1000,
      scenarios: results,
      timing,
    };
    const files = writeReport(resolve(o.reportDir), report);
    out('');
    out(
      `Summary (${secs(report.seconds)}${coresPerNode ? `, each node capped at ${coresPerNode} core` : ', nodes uncapped'}):`,
    );
    for (const [i, r] of results.entries()) {
      const what = r.status === 'ok' ? r.headline : `${r.status}: ${r.reason ?? ''}`;
      out(`  ${i + 1}. ${r.title.padEnd(40)} ${what}`);
      if (r.status === 'ok' && r.conclusion) out(`     ${r.conclusion}`);
    }
    out('');
    out(timingLine(timing));
    out('');
    out(`Report: ${files.html}`);
    out(`        ${files.json}`);
    if (o.keep) {
      caps?.remove();
      const kept: DemoCluster = sharded ?? cluster;
      cluster.keep();
      sharded?.keep();
      out('');
      out(`The cluster keeps running (--keep): ${kept.file}`);
      out(`  npx pgscale status -c ${kept.file}`);
      out(`  psql "$(npx pgscale url -c ${kept.file})"`);
      out(`  npx pgscale destroy --yes -c ${kept.file} && rm -r ${kept.dir}`);
      if (sharded)
        out(
          `The replicated cluster was stopped for the sharding scenarios: ${cluster.file} (npx pgscale up -c ${cluster.file} --detach)`,
        );
    }
  } catch (e) {
    if (!cleanup.interruptedBy) throw e;
    code = 130;
  } finally {
    if (cleanup.interruptedBy) {
      // The signal handler is cleaning up and will exit; a second signal must still force it.
      await cleanup.run();
    } else {
      await cleanup.run();
      if (!o.keep) out('Removed the demo cluster and its temporary directory.');
      cleanup.uninstall();
    }
  }
  return code;
}
