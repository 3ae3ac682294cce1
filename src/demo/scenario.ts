/**
 * What a demo scenario is: a named experiment run against the demo's cluster that returns its
 * measured figures, a table and charts for the report, and a one-sentence conclusion computed
 * from those figures. The demo runs the list in src/demo/scenarios/index.ts in order; adding a
 * scenario (sharding, later) is adding an entry there.
 */
import type { DemoCluster } from './cluster.js';
import type { Progress } from './progress.js';
import type { SpreadRow } from './repeat.js';

export interface DemoSettings {
  quick: boolean;
  /** Rows of demo_accounts (reads pick one at random). */
  keys: number;
  /** CPU share of each node in cores, or null when the nodes run uncapped. */
  nodeCores: number | null;
  /** The host's 1-minute load average when the demo started, before it started anything. */
  loadAtStart: number;
}

export interface ScenarioContext {
  cluster: DemoCluster;
  settings: DemoSettings;
  progress: Progress;
  /** Next unused write id (write ids stay unique over the whole run). */
  nextWriteId(count?: number): number;
  /**
   * The cluster of the sharding scenarios (one primary per group, no standby), started on first
   * use; the replicated cluster is stopped then, so that both never compete for the CPU.
   */
  sharded(): Promise<DemoCluster>;
  /** Times a part of the scenario (a stage, a warm-up, a teardown) for the run's timing line. */
  phase<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /**
   * Puts a process and its children (another tool's PostgreSQL node: Patroni's) under the CPU cap
   * of the demo's nodes, in a cgroup of its own named `group`; nothing when the nodes run uncapped.
   */
  capProcess(group: string, pid: number): void;
}

export interface BarChart {
  type: 'bars';
  title: string;
  /** The y axis: what a bar measures, with its unit (`reads/s`). */
  unit: string;
  /** The x axis: what the bars are (default `configuration`). */
  xLabel?: string;
  bars: { label: string; value: number; note?: string }[];
}

export interface PercentileChart {
  type: 'percentiles';
  title: string;
  /** Latency in ms at each percentile, per series. */
  series: { name: string; points: { p: number; ms: number }[] }[];
}

export interface TimelineChart {
  type: 'timeline';
  title: string;
  /** The y axis, with its unit (`operations/s`): every value is a rate per second. */
  unit: string;
  /** Width of a bucket in seconds (0.1: each value is a rate computed over 100 ms). */
  bucketSeconds: number;
  /** One rate per bucket, per series (bucket i covers [i, i+1) × bucketSeconds). */
  series: { name: string; values: number[] }[];
  markers: { t: number; label: string }[];
}

export type Chart = BarChart | PercentileChart | TimelineChart;

export interface Table {
  headers: string[];
  rows: (string | number | null)[][];
}

/** A figure whose spread over `--runs` the report shows. */
export interface KeyFigure {
  name: string;
  unit: string;
  value: number;
}

export interface ScenarioOutcome {
  /** One sentence computed from the figures. */
  conclusion: string;
  /** The raw figures, for results.json. */
  figures: Record<string, unknown>;
  table?: Table;
  charts?: Chart[];
  /** Caveats about the figures (e.g. the host was saturated). */
  notes?: string[];
  /** The one-line result for the terminal summary. */
  headline: string;
  /** The figures that matter most, compared across runs with --runs. */
  keyFigures?: KeyFigure[];
}

export interface Scenario {
  id: string;
  title: string;
  /** Why the scenario cannot run in this build or on this machine; null when it can. */
  unavailable(ctx: ScenarioContext): string | null;
  run(ctx: ScenarioContext): Promise<ScenarioOutcome>;
}

export type ScenarioStatus = 'ok' | 'skipped' | 'failed';

export interface ScenarioResult extends Partial<ScenarioOutcome> {
  id: string;
  title: string;
  status: ScenarioStatus;
  /** Why it was skipped or how it failed. */
  reason?: string;
  seconds: number;
  /** With --runs N: the spread of the key figures over the runs (the rest shows run 1). */
  spread?: SpreadRow[];
  /** With --runs N: how many runs, and the seconds of each. */
  runs?: number;
}
