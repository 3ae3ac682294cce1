/**
 * `npm run bench:failover -- --hosts` (issue #18): RTO when the primary's whole host dies
 * (`host.kill()`: every process in its network namespace SIGKILLed at once — PostgreSQL, its
 * agent or Patroni, its etcd member) or when its network is cut (`host.cut()`: the link goes
 * down, packets vanish), on three namespace hosts with a 3-member etcd, synchronous replication,
 * for pgscale agents and Patroni with the timings given per target (failover-hosts-targets.ts).
 *
 * The writer: one loop per host, in the root namespace, inserting unique ids into that host's
 * PostgreSQL directly (a standby answers 25006 at once and is asked again 20 ms later; a broken
 * connection is reopened), recording every acknowledged id with its host. So a host becomes
 * writable and is written to within ~20 ms: the RTO measured is the database side's (from the
 * fault to the first acknowledged insert on another host), without any router's detection time.
 * After each run every acknowledged id is looked up on the new primary (lost = missing ones);
 * then the host comes back (kill: its etcd member and agent/Patroni restart; cut: the link comes
 * up) and the next run waits until the old primary streams again.
 */
import { cpSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import type { Host } from '../test/netns-hosts.js';
import { netnsSkipReason } from '../test/netns-hosts.js';
import { etcdSkipReason } from '../test/etcd-harness.js';
import { interruptedBy } from './cleanup.js';
import { patroniUnavailable } from './failover-targets.js';
import {
  ACK_TABLE,
  connectTo,
  startPatroniHosts,
  startPgscaleHosts,
  waitFor,
  wholePrimary,
} from './failover-hosts-targets.js';
import type { HostTarget } from './failover-hosts-targets.js';
import { pickBinaries } from './server.js';

export const HOSTS_USAGE = `Usage: npm run bench:failover -- --hosts [options]

  --runs N          runs of each scenario against each target (default 3)
  --targets LIST    pgscale (ha.ttl default 10 s), pgscale-ttlN (ha.ttl N), patroni (Patroni's
                    defaults: ttl 30, loop_wait 10, retry_timeout 10), patroni-ttlN (ttl N,
                    loop_wait 1, retry_timeout (N-1)/2 rounded down)
                    (default pgscale,pgscale-ttl6,patroni,patroni-ttl6)
  --scenarios LIST  kill,cut (default both)
  --json FILE       where to write every number (default bench/results/failover-hosts-<date>.json)
  --keep-logs DIR   copy each target's logs (agents or Patroni, etcd) to DIR/<target> before
                    its hosts are removed
  -h, --help        this text
`;

type Scenario = 'kill' | 'cut';

export interface HostsOptions {
  runs: number;
  targets: string[];
  scenarios: Scenario[];
  json: string;
  keepLogs: string | null;
}

const TARGET_RE = /^(pgscale|patroni)(?:-ttl(\d+))?$/;
const benchDir = fileURLToPath(new URL('.', import.meta.url));
const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function parseHostsOptions(argv: string[]): HostsOptions | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      hosts: { type: 'boolean', default: false },
      runs: { type: 'string' },
      targets: { type: 'string' },
      scenarios: { type: 'string' },
      json: { type: 'string' },
      'keep-logs': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const runs = Number(values.runs ?? 3);
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`--runs: expected an integer ≥ 1, got "${values.runs}"`);
  const targets = (values.targets ?? 'pgscale,pgscale-ttl6,patroni,patroni-ttl6').split(',').filter(Boolean);
  for (const t of targets) {
    const m = TARGET_RE.exec(t);
    if (!m || (m[2] !== undefined && Number(m[2]) < 2))
      throw new Error(`--targets: "${t}" is not pgscale, pgscale-ttlN, patroni or patroni-ttlN (N ≥ 2)`);
  }
  const scenarios = (values.scenarios ?? 'kill,cut').split(',').filter(Boolean);
  for (const s of scenarios)
    if (s !== 'kill' && s !== 'cut') throw new Error(`--scenarios: "${s}" is not kill or cut`);
  if (targets.length === 0 || scenarios.length === 0)
    throw new Error('--targets and --scenarios need at least one item');
  const day = new Date().toISOString().slice(0, 10).replaceAll('-', '');
  return {
    runs,
    targets,
    scenarios: scenarios as Scenario[],
    json: values.json ?? join(benchDir, 'results', `failover-hosts-${day}.json`),
    keepLogs: values['keep-logs'] ?? null,
  };
}

let nextId = 1;

interface Ack {
  id: number;
  host: Host;
  end: number;
}

/** One insert loop per host, each straight to that host's PostgreSQL. */
class HostWriters {
  readonly acks: Ack[] = [];
  readonly errors: Record<string, number> = {};
  private stopped = false;
  private readonly loops: Promise<void>[];
  private readonly open = new Set<pg.Client>();

  constructor(private readonly t: HostTarget) {
    this.loops = t.net.hosts.map((h) => this.loop(h));
  }

  private drop(c: pg.Client): void {
    this.open.delete(c);
    // Not end(): towards a cut host it would wait for the kernel's retransmissions.
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  }

  private async loop(h: Host): Promise<void> {
    let c: pg.Client | null = null;
    while (!this.stopped) {
      if (!c) {
        try {
          c = await connectTo(h, this.t.login, 500, 5000);
          this.open.add(c);
        } catch {
          await sleep(50);
          continue;
        }
      }
      const id = nextId++;
      try {
        await c.query(`INSERT INTO ${ACK_TABLE} (id) VALUES ($1)`, [id]);
        this.acks.push({ id, host: h, end: performance.now() });
      } catch (e) {
        const code = (e as { code?: string }).code;
        const kind = code ?? (e instanceof Error ? e.message.slice(0, 48) : 'error');
        this.errors[kind] = (this.errors[kind] ?? 0) + 1;
        // A standby says 25006 (read-only) on a working connection: ask it again.
        if (code !== '25006') {
          this.drop(c);
          c = null;
        }
        await sleep(20);
      }
    }
    if (c) this.drop(c);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // A loop waiting on a cut host gives up at its query timeout; do not wait for it.
    for (const c of [...this.open]) this.drop(c);
    await Promise.all(this.loops);
  }
}

interface HostRun {
  target: string;
  scenario: Scenario;
  run: number;
  oldPrimary: string;
  newPrimary: string | null;
  /** From the fault to the first acknowledged insert on another host, ms (null: none in time). */
  rtoMs: number | null;
  acked: number;
  lost: number;
  lostIds: number[];
  /** Inserts acknowledged by the old primary after the fault (should be 0). */
  ackedByOldAfterFault: number;
  /** From the fault until the old primary streams again from the new one, ms. */
  wholeAgainMs: number | null;
  /** Which host is the primary then, and how many acknowledged ids it lacks (null: not whole). */
  primaryWhenWhole: string | null;
  lostAfterRejoin: number | null;
  /** Wall-clock time of the fault, to find it in the logs. */
  faultAtIso: string;
  errors: Record<string, number>;
  note?: string;
}

const NEW_PRIMARY_TIMEOUT_MS = 120_000;

/** The acknowledged ids that `h` does not hold. */
async function missing(t: HostTarget, h: Host, acks: readonly Ack[]): Promise<number[]> {
  const c = await connectTo(h, t.login, 2000, 30_000);
  try {
    const ids = acks.map((a) => a.id);
    const r = await c.query<{ id: string }>(
      `SELECT id::text AS id FROM ${ACK_TABLE} WHERE id = ANY($1::bigint[])`,
      [ids],
    );
    const stored = new Set(r.rows.map((x) => Number(x.id)));
    return ids.filter((id) => !stored.has(id));
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function measure(t: HostTarget, scenario: Scenario, run: number): Promise<HostRun> {
  const old = await waitFor(`${t.name}: a whole cluster`, 240_000, () => wholePrimary(t));
  const w = new HostWriters(t);
  const t1 = performance.now();
  while (performance.now() - t1 < 2000 || w.acks.length < 50) {
    if (performance.now() - t1 > 60_000) {
      await w.stop();
      throw new Error(`${t.name}: fewer than 50 writes in 60 s before the fault`);
    }
    await sleep(50);
  }
  const faultAt = performance.now();
  const faultAtIso = new Date().toISOString();
  if (scenario === 'kill') await old.kill();
  else old.cut();
  const firstElsewhere = () => w.acks.find((a) => a.end >= faultAt && a.host !== old) ?? null;
  let back: Ack | null = null;
  while (!back && performance.now() - faultAt < NEW_PRIMARY_TIMEOUT_MS) {
    await sleep(20);
    back = firstElsewhere();
  }
  if (back) await sleep(1000);
  await w.stop();
  const rec: HostRun = {
    target: t.name,
    scenario,
    run,
    oldPrimary: old.ns,
    newPrimary: back?.host.ns ?? null,
    rtoMs: back ? back.end - faultAt : null,
    acked: w.acks.length,
    lost: 0,
    lostIds: [],
    ackedByOldAfterFault: w.acks.filter((a) => a.host === old && a.end >= faultAt).length,
    wholeAgainMs: null,
    primaryWhenWhole: null,
    lostAfterRejoin: null,
    faultAtIso,
    errors: w.errors,
  };
  if (back) {
    const lost = await missing(t, back.host, w.acks);
    rec.lost = lost.length;
    rec.lostIds = lost.slice(0, 100);
  } else rec.note = `no write on another host within ${NEW_PRIMARY_TIMEOUT_MS / 1000} s`;
  // The host comes back.
  if (scenario === 'kill') await t.restartHost(old);
  else old.heal();
  try {
    const now = await waitFor(`${t.name}: the whole cluster`, 240_000, () => wholePrimary(t));
    rec.wholeAgainMs = performance.now() - faultAt;
    rec.primaryWhenWhole = now.ns;
    // The old host back must not take acknowledged commits away (an old primary winning again).
    rec.lostAfterRejoin = (await missing(t, now, w.acks)).length;
  } catch (e) {
    rec.note = `${rec.note ? `${rec.note}; ` : ''}${e instanceof Error ? e.message : String(e)}`;
  }
  log(
    `  ${t.name} ${scenario} #${run}: ${old.ns} → ${rec.newPrimary ?? '?'}, RTO ${fmtS(rec.rtoMs)} s, ` +
      `acked ${rec.acked}, lost ${rec.lost}, old primary acked after the fault ${rec.ackedByOldAfterFault}, ` +
      `whole again after ${fmtS(rec.wholeAgainMs)} s (primary ${rec.primaryWhenWhole ?? '?'}, ` +
      `lost then ${rec.lostAfterRejoin ?? '?'}), fault at ${faultAtIso}` +
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

interface Row {
  target: string;
  settings: string;
  scenario: Scenario;
  runs: number;
  rtoMedianMs: number | null;
  rtoMaxMs: number | null;
  notBack: number;
  lostPerRun: number[];
  lostAfterRejoinPerRun: (number | null)[];
  wholeAgainMedianMs: number | null;
}

function summarise(records: HostRun[], settings: Map<string, string>): Row[] {
  const rows: Row[] = [];
  for (const target of [...new Set(records.map((r) => r.target))])
    for (const scenario of ['kill', 'cut'] as const) {
      const rs = records.filter((r) => r.target === target && r.scenario === scenario);
      if (rs.length === 0) continue;
      const rto = rs.map((r) => r.rtoMs).filter((x): x is number => x !== null);
      rows.push({
        target,
        settings: settings.get(target) ?? '',
        scenario,
        runs: rs.length,
        rtoMedianMs: median(rto),
        rtoMaxMs: rto.length ? Math.max(...rto) : null,
        notBack: rs.length - rto.length,
        lostPerRun: rs.map((r) => r.lost),
        lostAfterRejoinPerRun: rs.map((r) => r.lostAfterRejoin),
        wholeAgainMedianMs: median(rs.map((r) => r.wholeAgainMs).filter((x): x is number => x !== null)),
      });
    }
  return rows;
}

const TITLE: Record<Scenario, string> = { kill: 'host killed', cut: 'network cut' };

function markdown(rows: Row[]): string {
  const out = [
    '| target | settings | fault | runs | RTO median (s) | RTO max (s) | acknowledged commits lost per run: at failover / once whole again | whole again median (s) |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows)
    out.push(
      `| ${[
        r.target,
        r.settings,
        TITLE[r.scenario],
        String(r.runs),
        fmtS(r.rtoMedianMs) + (r.notBack ? ` (${r.notBack} not back)` : ''),
        fmtS(r.rtoMaxMs),
        `${r.lostPerRun.join(', ')} / ${r.lostAfterRejoinPerRun.map((x) => x ?? '—').join(', ')}`,
        fmtS(r.wholeAgainMedianMs),
      ].join(' | ')} |`,
    );
  // pgscale against Patroni at the same TTL label (defaults against defaults, ttlN against ttlN).
  const ratios: string[] = [];
  for (const r of rows.filter((x) => x.target.startsWith('pgscale'))) {
    const twin = rows.find(
      (x) => x.scenario === r.scenario && x.target === r.target.replace(/^pgscale/, 'patroni'),
    );
    if (!twin || r.rtoMedianMs === null || twin.rtoMedianMs === null) continue;
    ratios.push(
      `| ${r.target} / ${twin.target} | ${TITLE[r.scenario]} | ${(r.rtoMedianMs / twin.rtoMedianMs).toFixed(2)} | ${
        r.rtoMaxMs !== null && twin.rtoMaxMs !== null ? (r.rtoMaxMs / twin.rtoMaxMs).toFixed(2) : '—'
      } |`,
    );
  }
  if (ratios.length > 0)
    out.push('', '| RTO ratio | fault | of medians | of maxima |', '| --- | --- | ---: | ---: |', ...ratios);
  return out.join('\n');
}

async function startTarget(name: string): Promise<HostTarget> {
  const bins = pickBinaries();
  const m = TARGET_RE.exec(name)!;
  const ttl = m[2] === undefined ? undefined : Number(m[2]);
  if (m[1] === 'pgscale') return startPgscaleHosts(name, bins, ttl);
  return startPatroniHosts(
    name,
    bins,
    ttl === undefined
      ? { ttl: 30, loopWait: 10, retryTimeout: 10 }
      : { ttl, loopWait: 1, retryTimeout: Math.max(1, Math.floor((ttl - 1) / 2)) },
  );
}

export async function hostsMain(o: HostsOptions): Promise<number> {
  const skip = netnsSkipReason() || etcdSkipReason();
  if (skip) throw new Error(`--hosts cannot run here: ${skip}`);
  const noPatroni = o.targets.some((t) => t.startsWith('patroni')) ? patroniUnavailable() : null;
  const meta = {
    startedAt: new Date().toISOString(),
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
  const records: HostRun[] = [];
  const settings = new Map<string, string>();
  let failed = false;
  // Written after every run too, so that an interrupted run keeps what it measured.
  const save = () => {
    mkdirSync(join(o.json, '..'), { recursive: true });
    const summary = summarise(records, settings);
    const end = { finishedAt: new Date().toISOString(), loadavgAtEnd: loadavg() };
    writeFileSync(o.json, JSON.stringify({ meta: { ...meta, ...end }, summary, records }, null, 2) + '\n');
  };
  for (const name of o.targets) {
    if (name.startsWith('patroni') && noPatroni) {
      log(`bench: ${name} skipped: ${noPatroni}`);
      meta.unavailable[name] = noPatroni;
      continue;
    }
    log(`bench: starting ${name} on 3 namespace hosts…`);
    const started = performance.now();
    let t: HostTarget;
    try {
      t = await startTarget(name);
    } catch (e) {
      if (interruptedBy()) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      log(`bench: ${name} could not start: ${msg}`);
      meta.unavailable[name] = msg;
      failed = true;
      continue;
    }
    log(`bench: ${name} (${t.settings}) up after ${fmtS(performance.now() - started)} s`);
    settings.set(name, t.settings);
    meta.versions[name] = t.versions;
    try {
      runs: for (let run = 1; run <= o.runs; run++)
        for (const scenario of o.scenarios) {
          try {
            const rec = await measure(t, scenario, run);
            records.push(rec);
            save();
            // A cluster that did not become whole again would only time out run after run.
            if (rec.wholeAgainMs === null) {
              log(`bench: ${name} is not whole again; its remaining runs are skipped`);
              failed = true;
              break runs;
            }
          } catch (e) {
            if (interruptedBy()) throw e;
            const msg = e instanceof Error ? e.message : String(e);
            log(`  ${name} ${scenario} #${run} failed: ${msg}`);
            failed = true;
          }
        }
    } finally {
      // Logs and configuration only: no data directory (no secrets file), no socket.
      if (o.keepLogs) {
        try {
          cpSync(t.net.dir, join(o.keepLogs, name), {
            recursive: true,
            filter: (f) =>
              statSync(f).isDirectory() ? !/\/(data(-\d+)?|etcd-etcd\d+)$/.test(f) : /\.(log|ya?ml)$/.test(f),
          });
        } catch (e) {
          log(`bench: copying the logs of ${name} failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      await t.stop();
    }
  }
  const rows = summarise(records, settings);
  process.stdout.write(markdown(rows) + '\n');
  save();
  log(`wrote ${o.json}`);
  return failed ? 1 : 0;
}
