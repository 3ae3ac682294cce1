/**
 * `npm run bench:failover`: what a client sees when the primary dies (kill -9 of its postmaster)
 * and during a planned switchover, for pgscale and for Patroni + etcd + HAProxy on the same
 * machine, in asynchronous and synchronous replication. For each mode every target gets a fresh
 * cluster (1 primary + 2 standbys); then, run after run, each scenario is played against each
 * target (the order of the targets rotates), under a write load of K connections doing autocommit
 * INSERTs of unique ids through the target's proxy. Reported per scenario: RTO, the longest time
 * without a successful write, client errors, and acknowledged commits missing from the new
 * primary. Before every run the cluster must be whole again (the old primary back as a streaming
 * standby). Everything is torn down at the end, on failure and on Ctrl-C.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runMain, interruptedBy } from './cleanup.js';
import { HOSTS_USAGE, hostsMain, parseHostsOptions } from './failover-hosts.js';
import { analyse, FailoverLoad } from './failover-load.js';
import type { Attempt, Disruption } from './failover-load.js';
import {
  PATRONI_DEFAULTS,
  PATRONI_TUNED,
  patroniUnavailable,
  startPatroni,
  startPgscale,
} from './failover-targets.js';
import type { FailoverTarget, Mode, NodeAddr } from './failover-targets.js';
import { pickBinaries } from './server.js';

const USAGE = `Usage: npm run bench:failover -- [options]
       node --import tsx bench/failover.ts [options]

  --runs N          runs of each scenario against each target (default 5; 2 with --quick)
  --quick           --runs 2 (a smoke test)
  --targets LIST    any of pgscale,patroni,patroni-tuned (default pgscale,patroni)
  --modes LIST      async,sync (default both)
  --scenarios LIST  kill9,switchover (default both)
  --clients K       write connections (default 4)
  --json FILE       where to write every number (default bench/results/failover-<date>.json)
  --hosts           instead: a host killed or cut off, over 3 network-namespace hosts
                    (see --hosts --help)
  -h, --help        this text
`;

type Scenario = 'kill9' | 'switchover';
const TARGETS = ['pgscale', 'patroni', 'patroni-tuned'] as const;
type TargetName = (typeof TARGETS)[number];

interface Options {
  runs: number;
  quick: boolean;
  targets: TargetName[];
  modes: Mode[];
  scenarios: Scenario[];
  clients: number;
  json: string;
}

function list<T extends string>(v: string | undefined, allowed: readonly T[], def: T[], what: string): T[] {
  if (v === undefined) return def;
  const items = v.split(',').filter(Boolean);
  for (const i of items)
    if (!allowed.includes(i as T)) throw new Error(`--${what}: "${i}" is not one of ${allowed.join(', ')}`);
  if (items.length === 0) throw new Error(`--${what}: empty list`);
  return items as T[];
}

function int(v: string | undefined, def: number, what: string, min = 1): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${what}: expected an integer ≥ ${min}, got "${v}"`);
  return n;
}

const today = () => new Date().toISOString().slice(0, 10).replaceAll('-', '');
const benchDir = fileURLToPath(new URL('.', import.meta.url));

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      targets: { type: 'string' },
      modes: { type: 'string' },
      scenarios: { type: 'string' },
      clients: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const quick = values.quick ?? false;
  return {
    runs: int(values.runs, quick ? 2 : 5, 'runs'),
    quick,
    targets: list(values.targets, TARGETS, ['pgscale', 'patroni'], 'targets'),
    modes: list(values.modes, ['async', 'sync'] as const, ['async', 'sync'], 'modes'),
    scenarios: list(values.scenarios, ['kill9', 'switchover'] as const, ['kill9', 'switchover'], 'scenarios'),
    clients: int(values.clients, 4, 'clients'),
    json: values.json ?? join(benchDir, 'results', `failover-${today()}.json`),
  };
}

const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Seconds of load before the fault, and of clean writes (no error) that end a run. */
const BEFORE_MS = 3000;
const CLEAN_MS = 3000;
/** A run that has not recovered after this long is recorded as such. */
const RUN_TIMEOUT_MS = 180_000;
const HEALTHY_TIMEOUT_MS = 300_000;

interface RunRecord extends Disruption {
  target: string;
  mode: Mode;
  scenario: Scenario;
  run: number;
  oldPrimary: string;
  newPrimary: string | null;
  /** Acknowledged commits missing from the new primary. */
  lost: number;
  lostIds: number[];
  /** Switchover: how long the command took, ms. */
  commandMs: number | null;
  commandOutput: string | null;
  /** From the fault until the old primary streams again from the new one (or the same one), ms. */
  wholeAgainMs: number | null;
  /** The run ended by RUN_TIMEOUT_MS instead of writes coming back. */
  timedOut: boolean;
  note?: string;
}

async function currentLeader(t: FailoverTarget, timeoutMs: number): Promise<NodeAddr> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const l = await t.leader();
    if (l) return l;
    if (Date.now() > deadline) throw new Error(`${t.name} (${t.mode}): no primary known`);
    await sleep(200);
  }
}

async function measure(
  t: FailoverTarget,
  scenario: Scenario,
  run: number,
  clients: number,
): Promise<RunRecord> {
  await t.waitHealthy(HEALTHY_TIMEOUT_MS);
  await sleep(1000);
  const before = await currentLeader(t, 30_000);
  const load = new FailoverLoad(t.appUrl, clients);
  load.start();
  const t0 = performance.now();
  while (performance.now() - t0 < BEFORE_MS || load.attempts.filter((a) => a.ok).length < 50) {
    if (performance.now() - t0 > 60_000) {
      await load.stop();
      throw new Error(`${t.name} (${t.mode}): fewer than 50 writes in 60 s before the fault`);
    }
    await sleep(50);
  }
  // Filled in by the switchover's promise (an object: TypeScript does not narrow it away).
  const cmd: { ms: number | null; output: string | null; error: string | null; done: boolean } = {
    ms: null,
    output: null,
    error: null,
    done: false,
  };
  const faultAt = performance.now();
  if (scenario === 'kill9') {
    t.killPrimary(before);
    cmd.done = true;
  } else {
    void t
      .switchover(before)
      .then(
        (out) => {
          cmd.output = out;
        },
        (e: unknown) => {
          cmd.error = e instanceof Error ? e.message : String(e);
        },
      )
      .finally(() => {
        cmd.ms = performance.now() - faultAt;
        cmd.done = true;
      });
  }
  // Until writes are back: some success started after the fault (kill -9) or a new primary
  // (switchover), then CLEAN_MS without any error.
  let timedOut = false;
  let leaderChanged = scenario === 'kill9';
  let lastLeaderCheck = 0;
  for (;;) {
    await sleep(50);
    const now = performance.now();
    if (now - faultAt > RUN_TIMEOUT_MS) {
      timedOut = true;
      break;
    }
    if (!cmd.done) continue;
    if (cmd.error) break;
    if (!leaderChanged && now - lastLeaderCheck > 500) {
      lastLeaderCheck = now;
      const l = await t.leader();
      leaderChanged = l !== null && l.name !== before.name;
    }
    if (!leaderChanged) continue;
    const a: readonly Attempt[] = load.attempts;
    const backAt = a.find((x) => x.ok && x.start >= faultAt);
    if (!backAt) continue;
    let lastError = -Infinity;
    let lastOk = -Infinity;
    for (const x of a) {
      if (x.ok) lastOk = Math.max(lastOk, x.end);
      else lastError = Math.max(lastError, x.end);
    }
    if (now - lastError >= CLEAN_MS && now - faultAt >= CLEAN_MS && now - lastOk < 500) break;
  }
  const attempts = await load.stop();
  const d = analyse(attempts, scenario, faultAt);
  const after = timedOut || cmd.error ? await t.leader() : await currentLeader(t, 60_000);
  let lostIds: number[] = [];
  if (after) {
    const ids = attempts.map((x) => x.id);
    const stored = await t.storedIds(after, Math.min(...ids), Math.max(...ids));
    lostIds = attempts.filter((x) => x.ok && !stored.has(x.id)).map((x) => x.id);
  }
  let wholeAgainMs: number | null = null;
  try {
    await t.waitHealthy(HEALTHY_TIMEOUT_MS);
    wholeAgainMs = performance.now() - faultAt;
  } catch (e) {
    log(`  ${t.name} (${t.mode}) not whole again: ${e instanceof Error ? e.message : String(e)}`);
  }
  const rec: RunRecord = {
    target: t.name,
    mode: t.mode,
    scenario,
    run,
    oldPrimary: before.name,
    newPrimary: after?.name ?? null,
    ...d,
    lost: lostIds.length,
    lostIds: lostIds.slice(0, 100),
    commandMs: cmd.ms,
    commandOutput: cmd.output,
    wholeAgainMs,
    timedOut,
  };
  if (cmd.error) rec.note = `switchover failed: ${cmd.error}`;
  log(
    `  ${t.name} ${t.mode} ${scenario} #${run}: ${before.name} → ${rec.newPrimary ?? '?'}, ` +
      `RTO ${fmtS(d.rtoMs)} s, longest gap ${fmtS(d.longestGapMs)} s, errors ${d.errors} ` +
      `${JSON.stringify(d.errorKinds)}, lost ${rec.lost}` +
      (cmd.ms !== null ? `, command ${fmtS(cmd.ms)} s` : '') +
      (wholeAgainMs !== null ? `, whole again after ${fmtS(wholeAgainMs)} s` : '') +
      (timedOut ? ' (TIMED OUT)' : '') +
      (rec.note ? ` (${rec.note})` : ''),
  );
  return rec;
}

function fmtS(ms: number | null): string {
  if (ms === null) return '—';
  return ms < 10_000 ? (ms / 1000).toFixed(2) : (ms / 1000).toFixed(1);
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Summary {
  target: string;
  mode: Mode;
  scenario: Scenario;
  runs: number;
  recovered: number;
  rtoMedianMs: number | null;
  rtoMinMs: number | null;
  rtoMaxMs: number | null;
  gapMedianMs: number | null;
  errorsPerRun: number[];
  /** Failed writes by kind over all runs, with the first message of each kind. */
  errorKinds: Record<string, { count: number; sample: string }>;
  lostPerRun: number[];
  commandMedianMs: number | null;
  wholeAgainMedianMs: number | null;
}

function errorKindsOf(rs: RunRecord[]): Record<string, { count: number; sample: string }> {
  const out: Record<string, { count: number; sample: string }> = {};
  for (const r of rs) {
    for (const [k, n] of Object.entries(r.errorKinds)) {
      const e = (out[k] ??= { count: 0, sample: r.errorSamples[k] ?? '' });
      e.count += n;
    }
  }
  return out;
}

function summarise(records: RunRecord[]): Summary[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) {
    const k = `${r.scenario}|${r.mode}|${r.target}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const rto = rs.map((r) => r.rtoMs).filter((x): x is number => x !== null);
    const r0 = rs[0]!;
    return {
      target: r0.target,
      mode: r0.mode,
      scenario: r0.scenario,
      runs: rs.length,
      recovered: rto.length,
      rtoMedianMs: median(rto),
      rtoMinMs: rto.length ? Math.min(...rto) : null,
      rtoMaxMs: rto.length ? Math.max(...rto) : null,
      gapMedianMs: median(rs.map((r) => r.longestGapMs)),
      errorsPerRun: rs.map((r) => r.errors),
      errorKinds: errorKindsOf(rs),
      lostPerRun: rs.map((r) => r.lost),
      commandMedianMs: median(rs.map((r) => r.commandMs).filter((x): x is number => x !== null)),
      wholeAgainMedianMs: median(rs.map((r) => r.wholeAgainMs).filter((x): x is number => x !== null)),
    };
  });
}

const SCENARIO_TITLE: Record<Scenario, string> = {
  kill9: 'kill -9 of the primary’s postmaster',
  switchover: 'planned switchover',
};

function markdown(summary: Summary[], scenarios: Scenario[], modes: Mode[]): string {
  const out: string[] = [];
  for (const sc of scenarios) {
    for (const mode of modes) {
      const rows = summary
        .filter((s) => s.scenario === sc && s.mode === mode)
        .sort((a, b) => TARGETS.indexOf(a.target as TargetName) - TARGETS.indexOf(b.target as TargetName));
      if (rows.length === 0) continue;
      out.push(
        `### ${SCENARIO_TITLE[sc]}, ${mode === 'sync' ? 'synchronous' : 'asynchronous'} replication`,
        '',
      );
      const head = [
        'target',
        'runs',
        'RTO median (s)',
        'min–max (s)',
        'longest write pause median (s)',
        'errors per run',
        'lost commits per run',
        sc === 'kill9' ? 'whole again (s)' : 'command (s)',
      ];
      out.push(`| ${head.join(' | ')} |`, `| ${head.map((h, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`);
      for (const s of rows) {
        const notBack = s.runs - s.recovered;
        out.push(
          `| ${[
            s.target,
            String(s.runs),
            fmtS(s.rtoMedianMs) + (notBack ? ` (${notBack} not back)` : ''),
            `${fmtS(s.rtoMinMs)}–${fmtS(s.rtoMaxMs)}`,
            fmtS(s.gapMedianMs),
            s.errorsPerRun.join(', '),
            s.lostPerRun.join(', '),
            fmtS(sc === 'kill9' ? s.wholeAgainMedianMs : s.commandMedianMs),
          ].join(' | ')} |`,
        );
      }
      out.push('');
      for (const s of rows) {
        const kinds = Object.entries(s.errorKinds).sort((a, b) => b[1].count - a[1].count);
        if (kinds.length === 0) continue;
        out.push(
          `- ${s.target} errors: ` +
            kinds.map(([k, e]) => `${e.count} × \`${k}\` (“${e.sample.replaceAll('|', '/')}”)`).join('; '),
        );
      }
      out.push('');
    }
  }
  return out.join('\n');
}

async function main(o: Options): Promise<number> {
  const bins = pickBinaries();
  const startedAt = new Date().toISOString();
  const meta = {
    startedAt,
    command: `bench/failover.ts ${process.argv.slice(2).join(' ')}`.trim(),
    options: o,
    machine: {
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      loadavgAtStart: loadavg(),
      node: process.version,
    },
    versions: {} as Record<string, Record<string, string>>,
    unavailable: {} as Record<string, string>,
  };
  const wantPatroni = o.targets.some((t) => t.startsWith('patroni'));
  const noPatroni = wantPatroni ? patroniUnavailable() : null;
  if (noPatroni) log(`bench: Patroni targets skipped: ${noPatroni}`);
  const records: RunRecord[] = [];
  for (const mode of o.modes) {
    const targets: FailoverTarget[] = [];
    for (const name of o.targets) {
      if (name !== 'pgscale' && noPatroni) {
        meta.unavailable[name] = noPatroni;
        continue;
      }
      log(`bench: starting ${name} (${mode})…`);
      try {
        const t =
          name === 'pgscale'
            ? await startPgscale(mode, bins)
            : await startPatroni(mode, bins, {
                name,
                timings: name === 'patroni' ? PATRONI_DEFAULTS : PATRONI_TUNED,
              });
        targets.push(t);
        meta.versions[name] = t.versions;
      } catch (e) {
        if (interruptedBy()) throw e;
        const msg = e instanceof Error ? e.message : String(e);
        log(`bench: ${name} (${mode}) could not start: ${msg}`);
        meta.unavailable[`${name}/${mode}`] = msg;
      }
    }
    for (let run = 1; run <= o.runs; run++) {
      for (const [si, scenario] of o.scenarios.entries()) {
        const k = (run + si) % Math.max(1, targets.length);
        const order = [...targets.slice(k), ...targets.slice(0, k)];
        for (const t of order) {
          try {
            records.push(await measure(t, scenario, run, o.clients));
          } catch (e) {
            if (interruptedBy()) throw e;
            const msg = e instanceof Error ? e.message : String(e);
            log(`  ${t.name} ${mode} ${scenario} #${run} failed: ${msg}`);
            records.push({
              target: t.name,
              mode,
              scenario,
              run,
              oldPrimary: '?',
              newPrimary: null,
              rtoMs: null,
              longestGapMs: 0,
              errors: 0,
              errorKinds: {},
              errorSamples: {},
              acked: 0,
              attempts: 0,
              lost: 0,
              lostIds: [],
              commandMs: null,
              commandOutput: null,
              wholeAgainMs: null,
              timedOut: false,
              note: `run failed: ${msg}`,
            });
          }
        }
      }
    }
    for (const t of targets) await t.stop();
  }
  const summary = summarise(records);
  const md = markdown(summary, o.scenarios, o.modes);
  process.stdout.write(md + '\n');
  mkdirSync(join(o.json, '..'), { recursive: true });
  writeFileSync(
    o.json,
    JSON.stringify(
      { meta: { ...meta, finishedAt: new Date().toISOString(), loadavgAtEnd: loadavg() }, summary, records },
      null,
      2,
    ) + '\n',
  );
  log(`wrote ${o.json}`);
  return records.some((r) => r.note?.startsWith('run failed')) ? 1 : 0;
}

// `--hosts`: the several-hosts benchmark (bench/failover-hosts.ts), with its own options.
if (process.argv.slice(2).includes('--hosts')) await runMain(parseHostsOptions, HOSTS_USAGE, hostsMain);
else await runMain(parseOptions, USAGE, main);
