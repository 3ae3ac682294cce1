/**
 * The proxy's memory while many logged-in clients send large messages slowly (issue #11 item 3):
 * N clients each send one Query of S bytes in 64 kB chunks with a short pause after each, all at
 * once, and wait for its answer. The proxy runs as its own process (a standalone `pgscale proxy`
 * from a built checkout), so its VmRSS, sampled every 250 ms, is the proxy's alone. Reported: the
 * RSS after the logins, the peak while the messages flow, the time until every client has its
 * answer, and whether every answer is right. `--baseline DIR` measures another built checkout
 * (e.g. the main branch before the change) the same way, in the same run.
 *
 * The text is `SELECT <i> /* x… *\/`: the server reads all of it, but a comment costs PostgreSQL
 * no more than the message itself, so the server's memory does not limit how many run at once.
 * The clients never hold a message in memory: every chunk is a view of one shared 64 kB buffer.
 * A proxy whose RSS passes --abort-rss-mb (default 6144) is stopped and reported as such, so a
 * proxy without a bound cannot exhaust a shared machine. `--rows` measures the other direction:
 * each client asks for one row of S bytes and leaves it unread for 5 s before reading it.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { table } from '../src/cli/table.js';
import { RawClient, fe } from '../test/raw-client.js';
import { runMain } from './cleanup.js';
import { rssKb } from './memory.js';
import { startServer } from './server.js';
import type { ServerInfo } from './server.js';
import { pgscaleAt } from './targets.js';
import type { Target } from './targets.js';
import { repoRoot } from '../test/harness.js';

const USAGE = `Usage: npm run build && node --import tsx bench/memory-large-messages.ts [options]

  --clients N          clients, each sending one large Query at the same time (default 100)
  --size MB            size of each Query message in MiB (default 100)
  --chunk KB           bytes per write in KiB (default 64)
  --pause-ms MS        pause after each write (default 1)
  --pool-size N        server connections of the proxy's pool (default 20)
  --abort-rss-mb MB    stop a proxy whose RSS passes this (default 6144)
  --rows               the other direction: each client asks for one row of --size MiB
                       (SELECT repeat(…)) and does not read for 5 s, then reads it all
  --baseline DIR       also measure the proxy of another built checkout DIR (e.g. /work/main)
  --json FILE          also write the numbers to FILE
  -h, --help           this text
`;

interface Options {
  clients: number;
  sizeMb: number;
  chunkKb: number;
  pauseMs: number;
  poolSize: number;
  abortRssMb: number;
  baseline: string | null;
  json: string | null;
  rows: boolean;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      clients: { type: 'string', default: '100' },
      size: { type: 'string', default: '100' },
      chunk: { type: 'string', default: '64' },
      'pause-ms': { type: 'string', default: '1' },
      'pool-size': { type: 'string', default: '20' },
      'abort-rss-mb': { type: 'string', default: '6144' },
      baseline: { type: 'string' },
      json: { type: 'string' },
      rows: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  const n = (name: string, v: string, min: number) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < min) throw new Error(`--${name} must be a number ≥ ${min}, got ${v}`);
    return x;
  };
  return {
    clients: n('clients', values.clients, 1),
    sizeMb: n('size', values.size, 2),
    chunkKb: n('chunk', values.chunk, 1),
    pauseMs: n('pause-ms', values['pause-ms'], 0),
    poolSize: n('pool-size', values['pool-size'], 1),
    abortRssMb: n('abort-rss-mb', values['abort-rss-mb'], 64),
    baseline: values.baseline ?? null,
    json: values.json ?? null,
    rows: values.rows,
  };
}

export interface LargeMessageResult {
  target: string;
  direction: 'to server' | 'to client';
  clients: number;
  messageMb: number;
  rssBaseMb: number;
  rssPeakMb: number;
  /** Seconds from the first byte sent until every answer arrived (or the abort). */
  seconds: number;
  /** Clients whose answer was right (their own number back). */
  answered: number;
  /** Why the run stopped early, or null. */
  aborted: string | null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Sends Query `SELECT <i> /* x… *\/` of exactly `size` bytes, `chunk` bytes at a time. */
async function sendSlowly(
  c: RawClient,
  i: number,
  size: number,
  filler: Buffer,
  o: Options,
  stop: () => boolean,
) {
  const head = Buffer.from(`SELECT ${i} /* `);
  const tail = Buffer.from(' */\0');
  const header = Buffer.alloc(5);
  header.write('Q', 0);
  header.writeUInt32BE(size - 1, 1);
  let body = size - 5 - head.length - tail.length;
  const write = async (b: Buffer) => {
    if (!c.socket.write(b)) await new Promise<void>((r) => c.socket.once('drain', () => r()));
    if (o.pauseMs > 0) await sleep(o.pauseMs);
  };
  await write(Buffer.concat([header, head]));
  while (body > 0 && !stop() && !c.closed) {
    const k = Math.min(body, filler.length);
    await write(k === filler.length ? filler : filler.subarray(0, k));
    body -= k;
  }
  if (!stop()) await write(tail);
}

async function measure(t: Target, server: ServerInfo, o: Options): Promise<LargeMessageResult> {
  const proxy = await t.start(server, { poolSize: o.poolSize, maxClients: o.clients + 10 });
  const pid = proxy.pid!;
  const size = Math.round(o.sizeMb * 1024 * 1024);
  const filler = Buffer.alloc(o.chunkKb * 1024, 'x');
  const clients: RawClient[] = [];
  let aborted: string | null = null;
  try {
    for (let i = 0; i < o.clients; i++) {
      const c = await RawClient.connect(proxy.port, proxy.host);
      await c.loginScram({ user: server.user, database: server.database }, server.password, {
        timeoutMs: 60_000,
      });
      clients.push(c);
    }
    await sleep(1000);
    const base = rssKb(pid);
    let peak = base;
    const sampler = setInterval(() => {
      try {
        const r = rssKb(pid);
        peak = Math.max(peak, r);
        if (r / 1024 > o.abortRssMb && aborted === null) aborted = `RSS passed ${o.abortRssMb} MB`;
      } catch {
        aborted ??= 'the proxy exited';
      }
    }, 250);
    const t0 = Date.now();
    let answered = 0;
    let done = 0;
    const progress = setInterval(() => {
      process.stderr.write(
        `bench: ${t.name}: ${done}/${o.clients} answered, RSS ${(rssKb(pid) / 1024).toFixed(0)} MB, ` +
          `peak ${(peak / 1024).toFixed(0)} MB\n`,
      );
    }, 10_000);
    const abortedP = new Promise<void>((resolve) => {
      const iv = setInterval(() => {
        if (aborted !== null || done === o.clients) {
          clearInterval(iv);
          resolve();
        }
      }, 100);
    });
    const runs = clients.map(async (c, i) => {
      if (o.rows) {
        // A row of `size` bytes of the digit i, not read for 5 s.
        c.socket.pause();
        c.send(fe({ name: 'Query', query: `SELECT repeat('${i % 10}', ${size}) AS big_row` }));
        await sleep(5000);
        c.socket.resume();
      } else {
        await sendSlowly(c, i, size, filler, o, () => aborted !== null);
      }
      if (aborted !== null) return;
      const reply = await c.until('Z', 3_600_000);
      const rows = RawClient.rows(reply);
      const want = o.rows ? String(i % 10).repeat(size) : String(i);
      if (rows.length === 1 && rows[0]![0] === want) answered++;
      done++;
    });
    await Promise.race([Promise.allSettled(runs), abortedP]);
    const seconds = (Date.now() - t0) / 1000;
    clearInterval(sampler);
    clearInterval(progress);
    return {
      target: t.name,
      direction: o.rows ? 'to client' : 'to server',
      clients: o.clients,
      messageMb: o.sizeMb,
      rssBaseMb: base / 1024,
      rssPeakMb: peak / 1024,
      seconds,
      answered,
      aborted,
    };
  } finally {
    for (const c of clients) c.destroy();
    await proxy.stop();
  }
}

async function main(o: Options): Promise<number> {
  const server = await startServer({ maxConnections: o.poolSize * 2 + 20, sharedBuffers: '128MB' });
  const targets: Target[] = [pgscaleAt('pgscale', repoRoot)];
  if (o.baseline) targets.unshift(pgscaleAt('pgscale-baseline', o.baseline));
  const results: LargeMessageResult[] = [];
  try {
    for (const t of targets) {
      const why = t.unavailable?.();
      if (why) throw new Error(`${t.name}: ${why}`);
      process.stderr.write(`bench: ${t.name}: ${o.clients} clients × ${o.sizeMb} MB…\n`);
      results.push(await measure(t, server.info, o));
    }
  } finally {
    await server.stop();
  }
  const out = table(
    [
      'target',
      'direction',
      'clients',
      'message',
      'RSS after logins',
      'RSS peak',
      'growth',
      'answered',
      'time',
      'note',
    ],
    results.map((r) => [
      r.target,
      r.direction,
      String(r.clients),
      `${r.messageMb} MB`,
      `${r.rssBaseMb.toFixed(0)} MB`,
      `${r.rssPeakMb.toFixed(0)} MB`,
      `${(r.rssPeakMb - r.rssBaseMb).toFixed(0)} MB`,
      `${r.answered}/${r.clients}`,
      `${r.seconds.toFixed(0)} s`,
      r.aborted ?? '',
    ]),
  );
  process.stdout.write(out + '\n');
  if (o.json) writeFileSync(o.json, JSON.stringify({ options: o, results }, null, 2) + '\n');
  return results.every((r) => r.aborted !== null || r.answered === r.clients) ? 0 : 1;
}

await runMain(parseOptions, USAGE, main);
