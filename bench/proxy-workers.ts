/**
 * `npm run bench:proxy-workers`: `pgscale proxy --workers 2` against one process, in one run on
 * one PostgreSQL server: pgbench -S (select-only) in simple and extended query mode at 50
 * clients, each point run with 1 and 2 workers in turn (the order alternates from round to round,
 * so drift on a shared machine hits both alike). It reports the TPS of each, the ratio
 * workers:2 / workers:1, and the proxy's CPU seconds per transaction: the CPU time (user +
 * system, /proc/<pid>/stat) of the primary and of every worker, summed. Everything listens on
 * 127.0.0.1 on free ports and is torn down at the end, on failure and on Ctrl-C. Ratios of the
 * same run only: no timed asserts.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { runMain } from './cleanup.js';
import { procCpuS } from './cpu-usage.js';
import { int } from './options.js';
import { initPgbench, runPgbench } from './pgbench.js';
import type { QueryMode } from './pgbench.js';
import { startServer } from './server.js';
import type { BenchServer } from './server.js';
import { pgscale } from './targets.js';

const USAGE = `Usage: npm run bench:proxy-workers -- [options]

  --clients N        pgbench clients (default 50)
  --duration S       seconds per pgbench run (default 20)
  --rounds N         runs of each (mode, workers) point; the best TPS of each is kept (default 2)
  --workers LIST     worker counts to compare (default 1,2)
  --pool-size N      server connections of the proxy, split evenly over its workers so that the
                     server sees the same number whatever the count (default 20)
  --scale N          pgbench scale factor (default 10)
  -h, --help         this text
`;

interface Options {
  clients: number;
  durationS: number;
  rounds: number;
  workers: number[];
  poolSize: number;
  scale: number;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      clients: { type: 'string' },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      workers: { type: 'string' },
      'pool-size': { type: 'string' },
      scale: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  const workers = (values.workers ?? '1,2').split(',').map((w) => int(w, 1, 'workers', 1));
  return {
    clients: int(values.clients, 50, 'clients', 1),
    durationS: int(values.duration, 20, 'duration', 1),
    rounds: int(values.rounds, 2, 'rounds', 1),
    workers,
    poolSize: int(values['pool-size'], 20, 'pool-size', 1),
    scale: int(values.scale, 10, 'scale', 1),
  };
}

const log = (m: string) => process.stderr.write(`bench: ${m}\n`);
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** The process and its children (the workers of the primary), by /proc's parent ids. */
function processTree(root: number): number[] {
  const out = [root];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === root) out.push(Number(e));
    } catch {
      /* exited */
    }
  }
  return out;
}

/** Sockets `pid` holds open (/proc/<pid>/fd links to socket:[…]). */
function socketCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
      } catch {
        return false;
      }
    }).length;
  } catch {
    return 0;
  }
}

const cpuOf = (pids: number[]) => pids.map((p) => procCpuS(p) ?? 0);

interface Sample {
  mode: QueryMode;
  workers: number;
  tps: number;
  transactions: number;
  cpuS: number;
  /** Each worker's share of the workers' CPU time. */
  split: number[];
  /** Each worker's open sockets halfway through (clients, its server connections, IPC). */
  sockets: number[];
  errors: number;
}

async function measure(o: Options, server: BenchServer, mode: QueryMode, workers: number): Promise<Sample> {
  // The server gets the same connections whatever the count: only the proxy's side changes.
  const poolSize = Math.ceil(o.poolSize / workers);
  const r = await pgscale.start(server.info, { poolSize, maxClients: o.clients, workers });
  try {
    const login = {
      pgbench: server.bins.pgbench,
      host: r.host,
      port: r.port,
      user: server.info.user,
      password: server.info.password,
      database: server.info.database,
      workload: 'select-only' as const,
      mode,
      clients: o.clients,
    };
    // Warm-up: every worker opens its pools and compiles its hot paths.
    await runPgbench({ ...login, durationS: 3 });
    const pids = processTree(r.pid!);
    if (pids.length !== (workers > 1 ? workers + 1 : 1))
      throw new Error(`expected ${workers} workers under pid ${r.pid}, found ${pids.length - 1}`);
    const cpu0 = cpuOf(pids);
    let sockets: number[] = [];
    const half = setTimeout(
      () => (sockets = (workers > 1 ? pids.slice(1) : pids).map(socketCount)),
      (o.durationS / 2 + 1) * 1000,
    );
    const res = await runPgbench({ ...login, durationS: o.durationS });
    clearTimeout(half);
    const used = cpuOf(pids).map((v, i) => v - (cpu0[i] ?? 0));
    const cpuS = used.reduce((a, b) => a + b, 0);
    const ofWorkers = workers > 1 ? used.slice(1) : used;
    const total = ofWorkers.reduce((a, b) => a + b, 0) || 1;
    return {
      mode,
      workers,
      tps: res.tps ?? 0,
      transactions: res.transactions,
      cpuS,
      split: ofWorkers.map((v) => v / total),
      sockets,
      errors: res.errorLines,
    };
  } finally {
    await r.stop();
  }
}

async function main(o: Options): Promise<number> {
  const load0 = loadavg();
  log('starting PostgreSQL…');
  const server = await startServer({ maxConnections: 200, sharedBuffers: '256MB' });
  try {
    await initPgbench(server.bins.pgbench, server.info, o.scale);
    const samples: Sample[] = [];
    const modes: QueryMode[] = ['simple', 'extended'];
    for (let round = 0; round < o.rounds; round++) {
      for (const mode of modes) {
        const order = round % 2 === 0 ? o.workers : [...o.workers].reverse();
        for (const w of order) {
          const s = await measure(o, server, mode, w);
          samples.push(s);
          log(
            `round ${round + 1} ${mode} workers=${w}: ${s.tps.toFixed(0)} tps, ` +
              `${((s.cpuS * 1e6) / Math.max(1, s.transactions)).toFixed(0)} µs CPU/tx` +
              (w > 1
                ? `, CPU split ${s.split.map((x) => `${(x * 100).toFixed(0)} %`).join(' / ')}` +
                  `, sockets ${s.sockets.join(' / ')}`
                : '') +
              (s.errors ? `, ${s.errors} error lines` : ''),
          );
        }
      }
    }
    const best = (mode: QueryMode, w: number) =>
      samples.filter((s) => s.mode === mode && s.workers === w).sort((a, b) => b.tps - a.tps)[0]!;
    const base = o.workers[0]!;
    const lines = [
      '',
      `command: node --import tsx bench/proxy-workers.ts ${process.argv.slice(2).join(' ')}`.trim(),
      `date: ${new Date().toISOString()}; nproc ${availableParallelism()} (${cpus()[0]?.model ?? '?'}); node ${process.version}`,
      `PostgreSQL ${server.bins.version}; pgbench -S, ${o.clients} clients, -T ${o.durationS}, best of ${o.rounds}; ` +
        `transaction pooling, ${o.poolSize} server connections split over the workers; ` +
        `load average ${load0} at the start, ${loadavg()} at the end (other work on the host)`,
      '',
      `| mode | ${o.workers.map((w) => `workers:${w} tps | CPU µs/tx (${w})`).join(' | ')} | ${o.workers
        .slice(1)
        .map((w) => `ratio ${w}:${base}`)
        .join(' | ')} |`,
      `|---|${o.workers.map(() => '---:|---:').join('|')}|${o.workers
        .slice(1)
        .map(() => '---:')
        .join('|')}|`,
      ...modes.map((mode) => {
        const cells = o.workers.map((w) => {
          const s = best(mode, w);
          return `${s.tps.toFixed(0)} | ${((s.cpuS * 1e6) / Math.max(1, s.transactions)).toFixed(0)}`;
        });
        const ratios = o.workers.slice(1).map((w) => (best(mode, w).tps / best(mode, base).tps).toFixed(2));
        return `| ${mode} | ${cells.join(' | ')} | ${ratios.join(' | ')} |`;
      }),
      '',
      'CPU µs/tx: CPU time (user + system) of the primary and all workers during the run, per transaction.',
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } finally {
    await server.stop();
  }
}

await runMain(parseOptions, USAGE, main);
