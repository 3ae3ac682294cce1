/**
 * The proxy's memory stays bounded when logged-in clients send large messages slowly
 * (`proxy.max_buffered_bytes`, issue #11 item 3). The proxy runs as its own process (a standalone
 * `pgscale proxy`), so its resident set is the proxy's alone. Several clients each send all but
 * the last bytes of a large Query and hold; the proxy may read only as many of them as the budget
 * allows and must leave the rest in the kernel and the clients. Then every client finishes its
 * message, and every one is executed whole; meanwhile a small query from another client answers
 * as usual.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { binarySets, makeCluster, repoRoot, until } from './harness.js';
import type { TestCluster } from './harness.js';
import { RawClient, fe } from './raw-client.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { findFreePortBlock } from '../src/cluster/ports.js';

const bins = binarySets()[0]!;
const MB = 1024 * 1024;

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

interface Running {
  child: ChildProcess;
  stop(): Promise<void>;
}

async function startProxy(config: string, http: string): Promise<Running> {
  const bin = join(repoRoot, 'bin', 'pgscale.js');
  const child = spawn(process.execPath, [bin, 'proxy', '-c', config, '--http', http], {
    env: { ...process.env, PGSCALE_DEV: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  await until(
    'the proxy to be ready',
    () => Promise.resolve(text.includes('ready on') || child.exitCode !== null),
    60_000,
  );
  if (child.exitCode !== null) throw new Error(`pgscale proxy exited: ${text}`);
  return {
    child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Resolves once `c` has nothing queued in its own process: the proxy (or the kernel) took it all. */
async function sent(c: RawClient): Promise<void> {
  await until('the bytes to leave the client', () => Promise.resolve(c.socket.writableLength === 0), 300_000);
}

describe('proxy memory with large client messages', () => {
  let tc: TestCluster;
  let proxy: Running | null = null;
  let port = 0;
  let httpPort = 0;
  let appPassword = '';
  const BUDGET_MB = 48;

  before(async () => {
    tc = await makeCluster(bins, { replicas: 0 });
    await tc.cluster.up();
    appPassword = readSecrets(tc.cluster.dataDir)!.app;
    const serverPort = tc.cluster.nodes()[0]!.port;
    port = await findFreePortBlock(1);
    httpPort = await findFreePortBlock(1);
    writeFileSync(join(tc.dir, 'mem-users.txt'), `"app" "${appPassword}"\n`);
    const yaml = join(tc.dir, 'mem-proxy.yaml');
    writeFileSync(
      yaml,
      [
        'proxy:',
        '  listen: 127.0.0.1',
        `  port: ${port}`,
        `  auth_file: ${join(tc.dir, 'mem-users.txt')}`,
        `  max_buffered_bytes: ${BUDGET_MB * MB}`,
        '  databases:',
        `    app: { host: 127.0.0.1, port: ${serverPort} }`,
        '',
      ].join('\n'),
    );
    proxy = await startProxy(yaml, `127.0.0.1:${httpPort}`);
  });
  after(async () => {
    await proxy?.stop();
    await tc.cleanup();
  });

  test('clients holding partial 40 MB messages cost the budget, not 40 MB each; nothing is lost', async (t) => {
    const CLIENTS = 5;
    const SIZE = 40 * MB;
    const pid = proxy!.child.pid!;
    const clients: RawClient[] = [];
    // A failed assertion must not leave reservations behind for the next test.
    t.after(() => clients.forEach((c) => c.destroy()));
    for (let i = 0; i < CLIENTS; i++) {
      const c = await RawClient.connect(port);
      await c.loginScram({ user: 'app', database: 'app' }, appPassword, { timeoutMs: 30_000 });
      clients.push(c);
    }
    // Warm up the path a large message takes (one of budget size, alone), so that what the
    // proxy's code and heap need once is in the baseline.
    const warm = await RawClient.connect(port);
    await warm.loginScram({ user: 'app', database: 'app' }, appPassword, { timeoutMs: 30_000 });
    const warmReply = await warm.query(`SELECT length('${'w'.repeat(8 * MB)}')`, 120_000);
    assert.deepEqual(RawClient.rows(warmReply), [[String(8 * MB)]]);
    warm.destroy();
    const baseline = rssMb(pid);

    // Each client: a Query whose text is `SELECT <i>, length('xxx…')`, all but its last 64 kB sent.
    const messages = clients.map((_, i) =>
      fe({ name: 'Query', query: `SELECT ${i}, length('${'x'.repeat(SIZE)}')` }),
    );
    const HOLD = 64 * 1024;
    clients.forEach((c, i) => c.socket.write(messages[i]!.subarray(0, messages[i]!.length - HOLD)));
    // Wait until the proxy reads no more: every client's bytes are taken (the unbounded proxy), or
    // one client's are and the others' have not moved for 3 s (the proxy stopped reading them).
    const queued = () => clients.map((c) => c.socket.writableLength);
    let last = queued();
    let stableSince = Date.now();
    await until(
      'the proxy to stop reading',
      () => {
        const now = queued();
        if (now.some((n, i) => n !== last[i])) {
          last = now;
          stableSince = Date.now();
        }
        return Promise.resolve(
          now.every((n) => n === 0) || (now.some((n) => n === 0) && Date.now() - stableSince > 3000),
        );
      },
      300_000,
    );
    const grown = rssMb(pid) - baseline;
    const pending = queued().filter((n) => n > 0).length;

    // Meanwhile another client's small query answers as usual.
    const small = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: appPassword,
      database: 'app',
    });
    await small.connect();
    assert.equal((await small.query('SELECT 42 AS n')).rows[0].n, 42);
    await small.end();

    assert.ok(
      grown < BUDGET_MB + 40,
      `the proxy grew by ${grown.toFixed(0)} MB holding ${CLIENTS} partial ${SIZE / MB} MB messages ` +
        `(budget ${BUDGET_MB} MB; ${pending} clients still had bytes the proxy had not read)`,
    );
    assert.ok(pending >= CLIENTS - 1, 'the clients beyond the budget were not read');
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    const gauge = (name: string) =>
      Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'm').exec(metrics)?.[1]);
    const budgetLines = metrics.split('\n').filter((l) => l.startsWith('pgscale_proxy_message_buffer'));
    assert.equal(gauge('pgscale_proxy_message_buffer_waiting_clients'), CLIENTS - 1, budgetLines.join('\n'));
    assert.equal(gauge('pgscale_proxy_message_buffer_limit_bytes'), BUDGET_MB * MB);
    const used = gauge('pgscale_proxy_message_buffer_bytes');
    assert.ok(used > SIZE && used <= BUDGET_MB * MB, `reserved ${used}`);

    // Every client finishes its message; each is executed whole, none lost or mixed up.
    clients.forEach((c, i) => c.socket.write(messages[i]!.subarray(messages[i]!.length - HOLD)));
    const replies = await Promise.all(clients.map((c) => c.until('Z', 300_000)));
    replies.forEach((r, i) =>
      assert.deepEqual(RawClient.rows(r), [[String(i), String(SIZE)]], `client ${i}`),
    );
    for (const c of clients) c.destroy();
  });

  async function login(): Promise<RawClient> {
    const c = await RawClient.connect(port);
    await c.loginScram({ user: 'app', database: 'app' }, appPassword, { timeoutMs: 30_000 });
    return c;
  }

  test('a message larger than the whole budget waits for the others, then runs alone; none deadlocks', async (t) => {
    const a = await login();
    const b = await login();
    t.after(() => [a, b].forEach((c) => c.destroy()));
    const partA = fe({ name: 'Query', query: `SELECT 'a', length('${'a'.repeat(20 * MB)}')` });
    const big = 60 * MB; // more than the 48 MB budget
    const msgB = fe({ name: 'Query', query: `SELECT 'b', length('${'b'.repeat(big)}')` });
    a.socket.write(partA.subarray(0, partA.length - 10));
    await sent(a);
    b.socket.write(msgB);
    // B cannot be had while A holds its reservation: B's answer waits for A's message.
    assert.equal(await b.next(3000), null, 'B is not answered while A holds the budget');
    a.socket.write(partA.subarray(partA.length - 10));
    assert.deepEqual(RawClient.rows(await a.until('Z', 120_000)), [['a', String(20 * MB)]]);
    assert.deepEqual(RawClient.rows(await b.until('Z', 300_000)), [['b', String(big)]]);
    a.destroy();
    b.destroy();
  });

  test('a client that leaves in the middle of a large message gives its budget back', async (t) => {
    const a = await login();
    const b = await login();
    t.after(() => [a, b].forEach((c) => c.destroy()));
    const msgA = fe({ name: 'Query', query: `SELECT length('${'a'.repeat(40 * MB)}')` });
    const msgB = fe({ name: 'Query', query: `SELECT 'b', length('${'b'.repeat(40 * MB)}')` });
    a.socket.write(msgA.subarray(0, msgA.length - 1000));
    await sent(a);
    b.socket.write(msgB);
    const early = await b.next(2000);
    assert.equal(early, null, 'B waits while A holds the budget');
    a.reset();
    assert.deepEqual(RawClient.rows(await b.until('Z', 300_000)), [['b', String(40 * MB)]]);
    // Pipelined large messages of one client are each taken in turn.
    const three = Buffer.concat(
      [1, 2, 3].map((i) => fe({ name: 'Query', query: `SELECT ${i}, length('${'p'.repeat(30 * MB)}')` })),
    );
    b.socket.write(three);
    const rows: (string | null)[][] = [];
    for (let i = 0; i < 3; i++) rows.push(...RawClient.rows(await b.until('Z', 300_000)));
    assert.deepEqual(
      rows,
      [1, 2, 3].map((i) => [String(i), String(30 * MB)]),
    );
    b.destroy();
  });

  test('large rows to clients that do not read are streamed: the proxy holds a chunk of each, not the row', async () => {
    const CLIENTS = 5;
    const ROW = 40 * MB;
    const pid = proxy!.child.pid!;
    const direct = new pg.Client({
      host: '127.0.0.1',
      port: tc.cluster.nodes()[0]!.port,
      user: 'postgres',
      password: readSecrets(tc.cluster.dataDir)!.superuser,
      database: 'app',
    });
    await direct.connect();
    try {
      const clients: RawClient[] = [];
      for (let i = 0; i < CLIENTS; i++) clients.push(await login());
      const baseline = rssMb(pid);
      for (const [i, c] of clients.entries()) {
        c.socket.pause();
        c.send(fe({ name: 'Query', query: `SELECT repeat('${i}', ${ROW}) AS big_row_${i}` }));
      }
      // Each server either blocks writing to the proxy (the proxy stopped reading it) or has sent
      // its whole row (the proxy took it all, as an unbounded proxy does), and stays so for 3 s
      // (a server can block for a moment on a proxy that is merely busy).
      let since = 0;
      await until(
        'every server to block on the proxy or finish',
        async () => {
          const r = await direct.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE query LIKE 'SELECT repeat(%big_row_%' AND (wait_event = 'ClientWrite' OR state = 'idle')`,
          );
          if (r.rows[0]!.n !== CLIENTS) since = 0;
          else since ||= Date.now();
          return since > 0 && Date.now() - since > 3000;
        },
        300_000,
      );
      const grown = rssMb(pid) - baseline;
      assert.ok(
        grown < 40,
        `the proxy grew by ${grown.toFixed(0)} MB for ${CLIENTS} clients not reading a ${ROW / MB} MB row each`,
      );
      for (const [i, c] of clients.entries()) {
        c.socket.resume();
        const rows = RawClient.rows(await c.until('Z', 300_000));
        assert.equal(rows.length, 1);
        assert.equal(rows[0]![0], String(i).repeat(ROW), `client ${i} got its whole row`);
        c.destroy();
      }
    } finally {
      await direct.end();
    }
  });
});
