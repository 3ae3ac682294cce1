/**
 * The steady write load of `npm run bench:rebalance`: a few node-postgres clients through the
 * proxy (extended protocol), each in a closed loop of single-row statements by key, half
 * `INSERT` of a new row and half `UPDATE … SET v = v + 1` of a random row loaded before. Every
 * statement's end time and latency is kept (the pause a user sees is the latency of the
 * statements held at a cutover), with every error, the ids of the acknowledged inserts and the
 * number of acknowledged updates (so that afterwards every acknowledged insert can be found once
 * and sum(v) compared with the updates).
 */
import pg from 'pg';
import type { Login } from './process.js';

export interface LoadOptions {
  clients: number;
  /** Rows 1..loadedRows exist (the UPDATEs pick among them). */
  loadedRows: number;
  /** First id of the inserts (client w uses firstInsertId + w * 1e9 + seq). */
  firstInsertId: number;
}

export interface WriteLoad {
  /** performance.now() at the end of each acknowledged statement, and its latency (ms). */
  readonly ends: number[];
  readonly latencies: number[];
  readonly errors: string[];
  readonly insertedIds: number[];
  /** Acknowledged UPDATEs (each added 1 to one row's v). */
  updates: number;
  stop(): Promise<void>;
}

export async function startWriteLoad(login: Login, o: LoadOptions): Promise<WriteLoad> {
  const clients: pg.Client[] = [];
  for (let i = 0; i < o.clients; i++) {
    const c = new pg.Client({ ...login, application_name: 'bench-rebalance' });
    c.on('error', () => undefined);
    await c.connect();
    clients.push(c);
  }
  let stopping = false;
  const load: WriteLoad = {
    ends: [],
    latencies: [],
    errors: [],
    insertedIds: [],
    updates: 0,
    async stop() {
      stopping = true;
      await Promise.all(runs);
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    },
  };
  const payload = (id: number) => `row ${id} `.padEnd(100, 'x');
  const loop = async (c: pg.Client, w: number) => {
    for (let seq = 1; !stopping; seq++) {
      const insert = seq % 2 === 0;
      const id = insert
        ? o.firstInsertId + w * 1_000_000_000 + seq
        : 1 + Math.floor(Math.random() * o.loadedRows);
      const t0 = performance.now();
      try {
        if (insert) {
          await c.query('INSERT INTO users (user_id, v, payload) VALUES ($1, 0, $2)', [id, payload(id)]);
          load.insertedIds.push(id);
        } else {
          const r = await c.query('UPDATE users SET v = v + 1 WHERE user_id = $1', [id]);
          if (r.rowCount !== 1) throw new Error(`UPDATE of user ${id} found ${r.rowCount} rows`);
          load.updates++;
        }
        const t1 = performance.now();
        load.ends.push(t1);
        load.latencies.push(t1 - t0);
      } catch (e) {
        load.errors.push(`client ${w}: ${(e as Error).message}`);
        if (load.errors.length > 100) stopping = true;
        // A broken connection stays broken: stop this client rather than spin.
        if (!(e as { code?: string }).code) return;
      }
    }
  };
  const runs = clients.map((c, w) => loop(c, w));
  return load;
}

export interface Window {
  statements: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Statements that took over 100 ms and over 500 ms. */
  over100: number;
  over500: number;
}

const quantile = (sorted: number[], q: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/** The statements that ended in [from, to) (performance.now() times). */
export function windowStats(load: WriteLoad, from: number, to: number): Window {
  const lat: number[] = [];
  for (let i = 0; i < load.ends.length; i++) {
    const t = load.ends[i]!;
    if (t >= from && t < to) lat.push(load.latencies[i]!);
  }
  lat.sort((a, b) => a - b);
  const seconds = (to - from) / 1000;
  return {
    statements: lat.length,
    seconds,
    perSecond: lat.length / seconds,
    p50Ms: quantile(lat, 0.5),
    p99Ms: quantile(lat, 0.99),
    maxMs: lat.length ? lat[lat.length - 1]! : NaN,
    over100: lat.filter((x) => x > 100).length,
    over500: lat.filter((x) => x > 500).length,
  };
}
