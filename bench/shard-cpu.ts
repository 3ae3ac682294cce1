/**
 * `npm run bench:shard-cpu`: what sharding costs the proxy in CPU per single-group statement
 * (issue #15's target: the sharded proxy's CPU per statement ≤ the unsharded proxy's + 5 µs, in
 * the same run). One `pgscale up` cluster of 2 groups (bench/writes-cluster.ts), no replicas, no
 * CPU caps, and in its one proxy two databases with the same tables, `accounts` and `history`:
 * `app`, where they are distributed by `aid` (colocated), and `plain` on group 0, where they are
 * ordinary tables (a database the catalog knows nothing of: the proxy's path without sharding).
 * Each pgbench transaction is three autocommit statements for one random key — an UPDATE by key,
 * an INSERT of a history row for that key, a SELECT by key — so each statement runs on one
 * group. Both databases are driven at the same fixed rate (`pgbench -R`), so that the proxy
 * batches the same way in both; runs alternate sharded/unsharded (the order flipping each round)
 * several rounds per query mode. The proxy's CPU is utime + stime of the controller process that
 * runs it (/proc/<pid>/stat) over the run, minus its idle rate, per statement pgbench completed;
 * each round gives a pair and its difference, reported as median, min and max over the rounds.
 * The floor (`--proxies`, bench/shard-cpu-floor.ts): the same pairs through two
 * bench/min-pooler.mjs processes, unsharded and sharded by the key alone, each one's own CPU.
 * `--profile DIR`: the controller loads bench/cpu-prof-preload.mjs, which runs V8's sampling
 * profiler during each measured run (profiling costs CPU: the µs of such a run are not the
 * proxy's own) and writes DIR/<mode>-<side>-r<round>.cpuprofile; the functions whose self time
 * per statement differs most between the sharded and unsharded runs are printed
 * (bench/cpuprofile.ts's compareProfiles).
 * Every process and directory is removed at the end, on failure and on Ctrl-C.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { runMain } from './cleanup.js';
import { procCpuS, procCpuSplitS, startCpuMeter } from './cpu-usage.js';
import { compareProfiles } from './cpuprofile.js';
import { int } from './options.js';
import { runPgbench } from './pgbench.js';
import type { QueryMode } from './pgbench.js';
import type { Login } from './process.js';
import { startFloor } from './shard-cpu-floor.js';
import type { Floor } from './shard-cpu-floor.js';
import { f1, PROXIES, report, STATEMENTS_PER_TX, summarize } from './shard-cpu-report.js';
import type { ProxyName, Run, Side } from './shard-cpu-report.js';
import { startWritesCluster } from './writes-cluster.js';
import type { WritesCluster } from './writes-cluster.js';

const USAGE = `Usage: npm run bench:shard-cpu -- [options]
       node --import tsx bench/shard-cpu.ts [options]

  --rounds N       sharded/unsharded pairs per mode (default 5; 2 with --quick)
  --duration S     seconds per run (default 10; 5 with --quick)
  --rate N         transactions per second pgbench holds each run to (-R; default 300), 3 statements each
  --clients N      pgbench clients (default 8)
  --modes L        pgbench -M modes, comma-separated (default simple,prepared)
  --accounts N     rows of accounts (default 20000)
  --proxies L      pgscale,min-pooler (default both): min-pooler is the floor, bench/min-pooler.mjs
                   unsharded and sharded by the key alone (bench/shard-cpu-floor.ts), measured
                   the same way; its pool size is --clients
  --profile DIR    profile the proxy (V8 sampling profiler) during each run, into DIR (kept), and
                   print where the sharded runs spend more per statement; the CPU figures of such
                   a run include the profiler's own cost
  --quick          a short check: --rounds 2 --duration 5
  --json FILE      also write every number to FILE
  -h, --help       this text
`;

const IDLE_S = 3;
const WARMUP_S = 4;
const PLAIN_DB = 'plain';

interface Options {
  rounds: number;
  durationS: number;
  rate: number;
  clients: number;
  modes: QueryMode[];
  accounts: number;
  proxies: ProxyName[];
  profile: string | null;
  json: string | null;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string' },
      duration: { type: 'string' },
      rate: { type: 'string' },
      clients: { type: 'string' },
      modes: { type: 'string' },
      accounts: { type: 'string' },
      proxies: { type: 'string' },
      profile: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const quick = values.quick ?? false;
  const modes = (values.modes ?? 'simple,prepared').split(',');
  for (const m of modes)
    if (!['simple', 'extended', 'prepared'].includes(m))
      throw new Error(`--modes: expected simple, extended or prepared, got "${m}"`);
  const proxies = (values.proxies ?? PROXIES.join(',')).split(',');
  for (const p of proxies)
    if (!PROXIES.includes(p as ProxyName))
      throw new Error(`--proxies: expected pgscale or min-pooler, got "${p}"`);
  return {
    proxies: proxies as ProxyName[],
    rounds: int(values.rounds, quick ? 2 : 5, 'rounds', 1),
    durationS: int(values.duration, quick ? 5 : 10, 'duration', 1),
    rate: int(values.rate, 300, 'rate', 1),
    clients: int(values.clients, 8, 'clients', 1),
    modes: modes as QueryMode[],
    accounts: int(values.accounts, 20_000, 'accounts', 1),
    profile: values.profile === undefined ? null : resolve(values.profile),
    json: values.json ?? null,
  };
}

const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function script(accounts: number): { name: string; text: string } {
  return {
    name: `shard-cpu-${accounts}`,
    text:
      `\\set aid random(1, ${accounts})\n` +
      '\\set delta random(-5000, 5000)\n' +
      'UPDATE accounts SET balance = balance + :delta WHERE aid = :aid;\n' +
      'INSERT INTO history (aid, delta, at) VALUES (:aid, :delta, now());\n' +
      'SELECT balance FROM accounts WHERE aid = :aid;\n',
  };
}

async function withClient<T>(login: Login, f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(login);
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

/** The tables, loaded through the proxy, then distributed (or not). */
async function load(login: Login, accounts: number, distributed: boolean): Promise<void> {
  await withClient(login, async (c) => {
    await c.query(
      'CREATE TABLE accounts (aid bigint PRIMARY KEY, balance int NOT NULL DEFAULT 0, filler text)',
    );
    await c.query('CREATE TABLE history (aid bigint NOT NULL, delta int NOT NULL, at timestamptz NOT NULL)');
    await c.query(
      `INSERT INTO accounts (aid, balance, filler) SELECT g, 0, repeat('x', 84) FROM generate_series(1, ${accounts}) g`,
    );
    if (distributed) {
      await c.query("SELECT create_distributed_table('accounts', 'aid')");
      await c.query("SELECT create_distributed_table('history', 'aid', colocate_with => 'accounts')");
    }
  });
}

/** The unsharded database on group 0, owned by the application user, with the same tables. */
async function makePlain(c: WritesCluster, accounts: number): Promise<Login> {
  const g0 = c.primaries.find((p) => p.group === 0) ?? c.primaries[0]!;
  const s = await c.superClient(g0);
  try {
    await s.query(`CREATE DATABASE ${PLAIN_DB} OWNER ${pg.escapeIdentifier(c.app.user)}`);
  } finally {
    await s.end();
  }
  const login = { ...c.app, database: PLAIN_DB };
  await load(login, accounts, false);
  return login;
}

async function vacuumAll(c: WritesCluster): Promise<void> {
  for (const p of c.primaries) {
    const s = await c.superClient(p);
    try {
      await s.query('VACUUM ANALYZE');
      await s.query('CHECKPOINT');
    } finally {
      await s.end();
    }
  }
}

async function measure(
  o: Options,
  c: WritesCluster,
  proxy: ProxyName,
  pid: number,
  login: Login,
  side: Side,
  mode: QueryMode,
  round: number,
  idleCores: number,
): Promise<Run> {
  const cpu0 = procCpuS(pid);
  const split0 = procCpuSplitS(pid);
  const t0 = performance.now();
  const meter = startCpuMeter(pid);
  const res = await runPgbench({
    pgbench: c.pgbench,
    ...login,
    workload: 'script',
    script: script(o.accounts),
    mode,
    clients: o.clients,
    durationS: o.durationS,
    rate: o.rate,
  });
  const cpu = meter.stop();
  const wallS = (performance.now() - t0) / 1000;
  const cpu1 = procCpuS(pid);
  const split1 = procCpuSplitS(pid);
  const proxyCpuS = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
  const stmts = res.transactions * STATEMENTS_PER_TX;
  const per = (a: number, b: number) => (stmts > 0 ? ((b - a) / stmts) * 1e6 : null);
  if (res.errorLines > 0)
    log(`  ${proxy} ${side} ${mode}: ${res.errorLines} error lines, first: ${res.firstError}`);
  return {
    proxy,
    side,
    mode,
    round,
    pgbench: res,
    wallS,
    proxyCpuS,
    usPerStatement: proxyCpuS !== null && stmts > 0 ? ((proxyCpuS - idleCores * wallS) / stmts) * 1e6 : null,
    userUsPerStatement: split0 && split1 ? per(split0.user, split1.user) : null,
    systemUsPerStatement: split0 && split1 ? per(split0.system, split1.system) : null,
    cpu,
  };
}

async function main(o: Options): Promise<number> {
  const started = new Date();
  if (o.profile) mkdirSync(o.profile, { recursive: true });
  log('starting a 2-group cluster (pgscale up)…');
  const c = await startWritesCluster({
    name: 'benchshardcpu',
    groups: 2,
    poolSize: 20,
    maxConnections: 100,
    sharedBuffers: '128MB',
    exposedDatabases: [PLAIN_DB],
    env: {
      // The proxy as it ships: dist/ (`npm run bench:shard-cpu` builds it), not the sources
      // through tsx, which the test harness's PGSCALE_DEV=1 asks for: tsx's transpiled code
      // names every closure it creates (__name), a cost of its own per statement.
      PGSCALE_DEV: '',
      ...(o.profile
        ? {
            NODE_OPTIONS: `--import=${pathToFileURL(join(import.meta.dirname, 'cpu-prof-preload.mjs')).href}`,
            PGSCALE_BENCH_PROFILE_DIR: o.profile,
          }
        : {}),
    },
  });
  const runs: Run[] = [];
  const idleCores: Partial<Record<ProxyName, number>> = {};
  let floor: Floor | null = null;
  try {
    await load(c.app, o.accounts, true);
    const plain = await makePlain(c, o.accounts);
    await vacuumAll(c);
    log(`loaded ${o.accounts} accounts in ${c.app.database} (distributed) and ${PLAIN_DB} (local)`);
    const sides: Partial<Record<ProxyName, { pid: number; logins: Record<Side, Login> }>> = {};
    if (o.proxies.includes('pgscale'))
      sides.pgscale = { pid: c.controllerPid, logins: { sharded: c.app, unsharded: plain } };
    if (o.proxies.includes('min-pooler')) {
      floor = await startFloor(c, plain, { poolSize: o.clients, table: 'accounts', key: 'aid' });
      // Two processes: the pairs' difference subtracts one's CPU from the other's.
      sides['min-pooler'] = {
        pid: floor.sharded.pid,
        logins: { sharded: floor.sharded.login, unsharded: floor.unsharded.login },
      };
      log(`min-pooler floor: shard → group ${floor.placement.join('')}`);
    }
    const pidOf = (proxy: ProxyName, side: Side) =>
      proxy === 'min-pooler' && side === 'unsharded' ? floor!.unsharded.pid : sides[proxy]!.pid;
    const pids = o.proxies.flatMap((p) => (['sharded', 'unsharded'] as const).map((s) => pidOf(p, s)));
    const i0 = pids.map((pid) => procCpuS(pid));
    await sleep(IDLE_S * 1000);
    const idleOf = new Map(
      pids.map((pid, i) => {
        const a = i0[i];
        const b = procCpuS(pid);
        return [pid, a != null && b !== null ? (b - a) / IDLE_S : 0];
      }),
    );
    for (const p of o.proxies) idleCores[p] = idleOf.get(sides[p]!.pid)!;
    log(`idle: ${o.proxies.map((p) => `${p} ${idleCores[p]!.toFixed(3)} cores`).join(', ')}`);
    // Discarded: fills the pools and caches, and lets the JIT compile both paths.
    for (const proxy of o.proxies)
      for (const mode of o.modes)
        for (const side of ['sharded', 'unsharded'] as const)
          await runPgbench({
            pgbench: c.pgbench,
            ...sides[proxy]!.logins[side],
            workload: 'script',
            script: script(o.accounts),
            mode,
            clients: o.clients,
            durationS: WARMUP_S,
            rate: o.rate,
          });
    for (let round = 0; round < o.rounds; round++)
      for (const mode of o.modes)
        for (const proxy of o.proxies) {
          const order: Side[] = round % 2 === 0 ? ['sharded', 'unsharded'] : ['unsharded', 'sharded'];
          const profile = o.profile !== null && proxy === 'pgscale' ? o.profile : null;
          for (const side of order) {
            if (profile) await profilerSwitch(profile, 'start');
            const pid = pidOf(proxy, side);
            const login = sides[proxy]!.logins[side];
            const r = await measure(o, c, proxy, pid, login, side, mode, round, idleOf.get(pid)!);
            if (profile) r.profile = await profilerSwitch(profile, 'stop', `${mode}-${side}-r${round}`);
            log(
              `  round ${round} ${mode} ${proxy} ${side}: ${f1(r.pgbench.tps)} TPS, ${f1(r.usPerStatement)} µs/stmt`,
            );
            runs.push(r);
          }
        }
  } finally {
    await floor?.stop();
    await c.stop();
  }
  const summary = summarize(o, runs);
  process.stdout.write(report(runs, summary) + '\n');
  if (o.profile) {
    for (const mode of o.modes) {
      const of = (side: Side) =>
        runs
          .filter((r) => r.mode === mode && r.side === side && r.profile)
          .map((r) => ({ file: r.profile!, statements: r.pgbench.transactions * STATEMENTS_PER_TX }));
      process.stdout.write(`\n${mode}: ${compareProfiles(of('sharded'), of('unsharded'), 30)}\n`);
    }
  }
  if (o.json) {
    const command = `npm run bench:shard-cpu -- ${process.argv.slice(2).join(' ')}`.trim();
    writeFileSync(
      o.json,
      JSON.stringify(
        {
          meta: {
            started: started.toISOString(),
            finished: new Date().toISOString(),
            command,
            options: o,
            host: {
              cpus: cpus().length,
              model: cpus()[0]?.model ?? null,
              kernel: release(),
              load: loadavg(),
            },
            node: process.version,
            script: script(o.accounts).text,
            statementsPerTx: STATEMENTS_PER_TX,
          },
          idleCores,
          runs,
          summary,
        },
        null,
        2,
      ) + '\n',
    );
    log(`wrote ${o.json}`);
  }
  return runs.some((r) => r.pgbench.errorLines > 0) ? 1 : 0;
}

/**
 * Asks the controller's profiler (cpu-prof-preload.mjs) to start or stop, and waits until it
 * has; a stopped profile is renamed `<name>.cpuprofile` and its path returned.
 */
async function profilerSwitch(dir: string, what: 'start' | 'stop', name = ''): Promise<string | null> {
  const written = () => new Set(readdirSync(dir).filter((f) => /^controller-\d+\.cpuprofile$/.test(f)));
  const before = written();
  writeFileSync(join(dir, what), '');
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    await sleep(100);
    if (existsSync(join(dir, what))) continue;
    if (what === 'start') return null;
    const fresh = [...written()].find((f) => !before.has(f));
    if (fresh !== undefined) {
      const path = join(dir, `${name}.cpuprofile`);
      renameSync(join(dir, fresh), path);
      return path;
    }
  }
  throw new Error(`the controller's profiler did not ${what} (is bench/cpu-prof-preload.mjs loaded?)`);
}

await runMain(parseOptions, USAGE, main);
