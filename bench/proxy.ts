/**
 * `npm run bench:proxy`: pgscale's proxy against PgBouncer and against PostgreSQL itself, in one
 * run on one server. It starts a single PostgreSQL node, loads pgbench data, then for every
 * workload × query mode × client count runs pgbench against each target in turn (the order
 * rotates from point to point, so that drift on a shared machine hits every target alike), and
 * reports TPS, p50/p99 latency and the ratios between targets. It then measures each proxy's
 * memory per idle client. Everything listens on 127.0.0.1 on free ports and is torn down at the
 * end, on failure and on Ctrl-C. Results are ratios measured in the same run: no timed asserts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { runMain } from './cleanup.js';
import { summarizeProfile } from './cpuprofile.js';
import { startCpuMeter } from './cpu-usage.js';
import { ensureNofile, measureIdleClients } from './memory.js';
import type { MemoryResult } from './memory.js';
import { createUserFunction, initPgbench, runPgbench } from './pgbench.js';
import type { QueryMode, Workload } from './pgbench.js';
import { errorNotes, memoryTable, resultsTable } from './report.js';
import type { Outcome, Point } from './report.js';
import { startServer } from './server.js';
import type { BenchServer, ServerInfo } from './server.js';
import { ALL_TARGETS, DEFAULT_TARGETS, pgbouncerVersion, pgscaleAt } from './targets.js';
import type { Running, Target } from './targets.js';
import { int } from './options.js';

const USAGE = `Usage: npm run bench:proxy -- [options]
       node --import tsx bench/proxy.ts [options]

  --quick              smoke test: clients 1,10,50; -T 5; modes simple,prepared
  --targets LIST       direct,pgbouncer,pgscale,node-pipe,min-pooler (default: all five); node-pipe
                       is a Node.js relay that only copies bytes (the floor under any Node proxy),
                       min-pooler a minimal Node.js transaction pooler (the floor of a Node pooler)
  --clients LIST       client counts (default 1,10,50,200,1000)
  --duration S         seconds per pgbench run (default 30; 5 with --quick)
  --modes LIST         simple,extended,prepared (default all; simple,prepared with --quick)
  --workloads LIST     select-only,tpcb,user-function (default the first two); user-function
                       calls a PL/pgSQL function in every transaction, after which pgscale checks
                       the server's session state (compare with --baseline to see that cost)
  --pool-size N        server connections per proxy pool (default 20)
  --scale N            pgbench scale factor (default 10)
  --idle-clients N     idle clients for the memory measurement (default 10000; 0 skips it)
  --json FILE          also write every number to FILE
  --baseline DIR       also measure pgscale-baseline: the proxy of another built checkout DIR
                       (bin/ and dist/, e.g. the commit before a change), in the same run
  --profile            run pgscale's proxy under node --cpu-prof (the measured points only, not
                       the memory test); keeps the .cpuprofile in a temporary directory and
                       prints its top self-time functions
  -h, --help           this text
`;

interface Options {
  targets: string[];
  clients: number[];
  durationS: number;
  modes: QueryMode[];
  workloads: Workload[];
  poolSize: number;
  scale: number;
  idleClients: number;
  json: string | null;
  quick: boolean;
  profile: boolean;
  /** A built checkout whose proxy runs as the extra target `pgscale-baseline`. */
  baseline: string | null;
}

function list<T extends string>(v: string | undefined, allowed: readonly T[], def: T[], what: string): T[] {
  if (v === undefined) return def;
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const i of items) {
    if (!allowed.includes(i as T))
      throw new Error(`--${what}: unknown "${i}" (accepted: ${allowed.join(', ')})`);
  }
  return items as T[];
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      targets: { type: 'string' },
      clients: { type: 'string' },
      duration: { type: 'string' },
      modes: { type: 'string' },
      workloads: { type: 'string' },
      'pool-size': { type: 'string' },
      scale: { type: 'string' },
      'idle-clients': { type: 'string' },
      json: { type: 'string' },
      profile: { type: 'boolean', default: false },
      baseline: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const quick = values.quick ?? false;
  const clients = values.clients
    ? values.clients.split(',').map((c) => int(c.trim(), 0, 'clients', 1))
    : quick
      ? [1, 10, 50]
      : [1, 10, 50, 200, 1000];
  return {
    quick,
    targets: list(
      values.targets,
      ALL_TARGETS.map((t) => t.name),
      [...DEFAULT_TARGETS],
      'targets',
    ),
    clients,
    durationS: int(values.duration, quick ? 5 : 30, 'duration', 1),
    modes: list(
      values.modes,
      ['simple', 'extended', 'prepared'],
      quick ? ['simple', 'prepared'] : ['simple', 'extended', 'prepared'],
      'modes',
    ),
    workloads: list(
      values.workloads,
      ['select-only', 'tpcb', 'user-function'],
      ['select-only', 'tpcb'],
      'workloads',
    ),
    poolSize: int(values['pool-size'], 20, 'pool-size', 1),
    scale: int(values.scale, 10, 'scale', 1),
    idleClients: int(values['idle-clients'], 10_000, 'idle-clients'),
    json: values.json ?? null,
    profile: values.profile ?? false,
    baseline: values.baseline ?? null,
  };
}

const log = (s: string) => process.stderr.write(`${s}\n`);

/** What pgbench's TPC-B vacuum would do before a run, done straight on the server. */
async function tidy(server: ServerInfo): Promise<void> {
  const c = new pg.Client({
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database: server.database,
  });
  c.on('error', () => undefined);
  await c.connect();
  try {
    await c.query('VACUUM pgbench_branches');
    await c.query('VACUUM pgbench_tellers');
    await c.query('TRUNCATE pgbench_history');
  } finally {
    await c.end();
  }
}

/**
 * After `pgbench -i`: a checkpoint (so its writes do not land in the first measured run) and a
 * short discarded run through every target, so that caches, pools and JIT are warm for all alike.
 */
async function warmUp(o: Options, server: BenchServer, running: Map<string, Running>): Promise<void> {
  const c = new pg.Client({
    host: server.info.host,
    port: server.info.port,
    user: server.info.superuser,
    password: server.info.superPassword,
    database: server.info.database,
  });
  c.on('error', () => undefined);
  await c.connect();
  try {
    await c.query('VACUUM ANALYZE');
    await c.query('CHECKPOINT');
  } finally {
    await c.end();
  }
  for (const [name, r] of running) {
    log(`warming up ${name}…`);
    await runPgbench({
      pgbench: server.bins.pgbench,
      host: r.host,
      port: r.port,
      user: server.info.user,
      password: server.info.password,
      database: server.info.database,
      workload: 'select-only',
      mode: 'simple',
      clients: Math.min(10, Math.max(...o.clients)),
      durationS: Math.min(3, o.durationS),
    });
  }
}

async function machine(server: BenchServer) {
  const c = new pg.Client({
    host: server.info.host,
    port: server.info.port,
    user: server.info.user,
    password: server.info.password,
    database: server.info.database,
  });
  await c.connect();
  const v = (await c.query<{ version: string }>('SELECT version()')).rows[0]!.version;
  await c.end();
  let pgbenchVersion = '';
  try {
    pgbenchVersion = execFileSync(server.bins.pgbench, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    /* reported as empty */
  }
  return {
    date: new Date().toISOString(),
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    postgres: v,
    pgbench: pgbenchVersion,
    pgbouncer: pgbouncerVersion(),
  };
}

async function runPoints(
  o: Options,
  server: BenchServer,
  running: Map<string, Running>,
  names: string[],
): Promise<Point[]> {
  const proxies = names.filter((n) => n !== 'direct').length;
  const directLimit = server.maxConnections - server.reserve - proxies * o.poolSize;
  const points: Point[] = [];
  const total = o.workloads.length * o.modes.length * o.clients.length;
  for (const workload of o.workloads) {
    for (const mode of o.modes) {
      for (const clients of o.clients) {
        const p: Point = { workload, mode, clients, outcomes: {} };
        const k = points.length;
        // Rotate the order from point to point: direct, pgbouncer, pgscale; then pgbouncer, …
        const order = names.map((_, i) => names[(i + k) % names.length]!);
        for (const name of order) {
          const r = running.get(name);
          if (!r) {
            p.outcomes[name] = { skipped: 'n/a' };
            continue;
          }
          if (name === 'direct' && clients > directLimit) {
            p.outcomes[name] = { skipped: `> ${directLimit} conns` };
            continue;
          }
          if (workload === 'tpcb') await tidy(server.info);
          const meter = r.pid !== undefined ? startCpuMeter(r.pid) : null;
          const res = await runPgbench({
            pgbench: server.bins.pgbench,
            host: r.host,
            port: r.port,
            user: server.info.user,
            password: server.info.password,
            database: server.info.database,
            workload,
            mode,
            clients,
            durationS: o.durationS,
          });
          const cpu = meter?.stop();
          const cpuS = cpu?.proxyCores != null ? cpu.proxyCores * cpu.wallS : null;
          p.outcomes[name] =
            cpu && cpuS !== null
              ? {
                  result: res,
                  proxyCpu: {
                    cpuS,
                    usPerTx: res.transactions > 0 ? (cpuS * 1e6) / res.transactions : null,
                    runqueueWait: cpu.proxyRunqueueWait,
                  },
                }
              : { result: res };
          const outcome = p.outcomes[name];
          const us = 'proxyCpu' in outcome ? outcome.proxyCpu?.usPerTx : undefined;
          log(
            `[${k + 1}/${total}] ${workload} ${mode} c=${clients} ${name}: ` +
              `${res.tps?.toFixed(0) ?? '-'} tps, p50 ${res.p50Ms?.toFixed(2) ?? '-'} ms, p99 ${res.p99Ms?.toFixed(2) ?? '-'} ms` +
              (us != null ? `, proxy CPU ${us.toFixed(0)} µs/tx` : '') +
              (res.errorLines ? `, ${res.errorLines} error lines (${res.firstError ?? ''})` : ''),
          );
        }
        // Keep the table's column order fixed whatever order the runs took.
        p.outcomes = Object.fromEntries(names.map((n): [string, Outcome] => [n, p.outcomes[n]!]));
        points.push(p);
      }
    }
  }
  return points;
}

async function runMemory(
  o: Options,
  server: BenchServer,
  targets: Target[],
  nofile: number,
): Promise<MemoryResult[]> {
  const out: MemoryResult[] = [];
  // Our process holds one descriptor per client too; leave room for everything else.
  const wanted = Math.min(o.idleClients, Math.max(1000, nofile - 500));
  for (const t of targets) {
    if (t.name === 'direct') continue;
    log(`memory: opening ${wanted} idle clients to ${t.name}…`);
    const r = await t.start(server.info, { poolSize: o.poolSize, maxClients: wanted });
    try {
      if (r.pid === undefined) continue;
      const m = await measureIdleClients(
        t.name,
        r.pid,
        {
          host: r.host,
          port: r.port,
          user: server.info.user,
          password: server.info.password,
          database: server.info.database,
        },
        wanted,
        100,
        (n) => {
          if (n % 1000 === 0) log(`memory: ${t.name}: ${n} idle clients`);
        },
      );
      out.push(m);
    } finally {
      await r.stop();
    }
  }
  return out;
}

async function main(o: Options): Promise<number> {
  const nofile = ensureNofile(Math.max(o.idleClients, ...o.clients) + 2000);
  const selected = ALL_TARGETS.filter((t) => o.targets.includes(t.name));
  if (o.baseline) selected.push(pgscaleAt('pgscale-baseline', o.baseline));
  const unavailable: Record<string, string> = {};
  for (const t of selected) {
    const why = t.unavailable?.() ?? null;
    if (why) {
      unavailable[t.name] = why;
      log(`${t.name}: unavailable (${why}); skipped`);
    }
  }
  const available = selected.filter((t) => !unavailable[t.name]);
  const names = selected.map((t) => t.name);

  log('starting PostgreSQL…');
  const server = await startServer({ maxConnections: 1100, sharedBuffers: '256MB' });
  log(
    `PostgreSQL ${server.bins.version} on ${server.info.host}:${server.info.port}; pgbench -i -s ${o.scale}…`,
  );
  await initPgbench(server.bins.pgbench, server.info, o.scale);
  if (o.workloads.includes('user-function')) await createUserFunction(server.info);
  const meta = await machine(server);

  // Kept after the run (it is the output): not registered for cleanup.
  const profileDir = o.profile ? mkdtempSync(join(tmpdir(), 'pgscale-bench-profile-')) : null;
  const running = new Map<string, Running>();
  const maxClients = Math.max(...o.clients);
  for (const t of available) {
    const r = await t.start(server.info, { poolSize: o.poolSize, maxClients, cpuProfileDir: profileDir });
    running.set(t.name, r);
    log(`${t.name}: ${r.host}:${r.port}${r.pid ? ` (pid ${r.pid})` : ''}`);
  }
  await warmUp(o, server, running);
  const points = await runPoints(o, server, running, names);
  for (const r of running.values()) await r.stop();
  running.clear();

  const memory = o.idleClients > 0 ? await runMemory(o, server, available, nofile) : [];

  const command = `node --import tsx bench/proxy.ts ${process.argv.slice(2).join(' ')}`.trim();
  const out: string[] = [
    '',
    `command: ${command}`,
    `date: ${meta.date}; nproc ${meta.nproc} (${meta.cpu}); node ${meta.node}`,
    `${meta.postgres}`,
    `${meta.pgbouncer ?? 'PgBouncer not found'}; ${meta.pgbench}`,
    `pgbench: -T ${o.durationS}, -j min(clients, 4), scale ${o.scale}; proxies: transaction pooling, pool size ${o.poolSize}`,
    ...Object.entries(unavailable).map(([n, why]) => `${n}: not yet available (${why})`),
    '',
    resultsTable(points, names),
    '',
    'Ratios divide the TPS of two targets at the same point of this run. CPU µs/tx: the proxy',
    "process's CPU time (user + system) during the run divided by the transactions completed;",
    'CPU pgscale/min-pooler divides those of pgscale and min-pooler.',
  ];
  if (out.some((l) => /\d\*/.test(l)))
    out.push('TPS*: the run had errors; its TPS counts completed transactions only.');
  const notes = errorNotes(points);
  if (notes.length) out.push('', 'errors:', ...notes.map((n) => `  ${n}`));
  if (memory.length) {
    out.push('', `memory per idle client (proxy VmRSS; open-file limit ${nofile}):`, memoryTable(memory));
  }
  if (profileDir) {
    const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
    out.push('', `CPU profile of pgscale's proxy (warm-up and every point above), in ${profileDir}:`);
    if (files.length === 0) out.push('  no .cpuprofile written (did the proxy exit cleanly on SIGTERM?)');
    for (const f of files) out.push(summarizeProfile(join(profileDir, f)));
  }
  process.stdout.write(out.join('\n') + '\n');
  if (o.json) {
    writeFileSync(
      o.json,
      JSON.stringify({ meta: { ...meta, command, options: o, unavailable }, points, memory }, null, 2) + '\n',
    );
    log(`wrote ${o.json}`);
  }
  await server.stop();
  return 0;
}

await runMain(parseOptions, USAGE, main);
