/**
 * client_encoding other than UTF8 through the proxy (issue #11, item 9). PostgreSQL accepts
 * LATIN1 or WIN1252 and converts; the proxy used to end the session at the first non-ASCII byte
 * (FATAL 22021). Real clients: psql (simple protocol, SQL PREPARE/EXECUTE), pgbench -M extended
 * and -M prepared (Parse/Bind, named statements), node-postgres (SET client_encoding replayed on
 * a shared server connection). Encodings whose multibyte characters contain ASCII bytes (SJIS…)
 * are refused with a clear error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { appLibpqEnv, startAppProxy, startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import type { ProxyServer } from '../src/proxy/proxy-server.js';
import { tempDir } from './harness.js';
import { findClientTools } from './drivers/util.js';
import pg from 'pg';

const tools = findClientTools();
const L = (s: string) => Buffer.from(s, 'latin1');

interface Out {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function runBytes(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: Buffer): Promise<Out> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('latin1').on('data', (d: string) => (err += d));
    child.stdin.end(input ?? Buffer.alloc(0));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

describe('client_encoding LATIN1 / WIN1252 through the proxy; SJIS refused', () => {
  let fx: ProxyFixture;
  let sessionProxy: ProxyServer;
  let sessionPort: number;
  let onePool: ProxyServer;
  let onePort: number;
  const dir = tempDir('pgscale-encoding-');

  const env = (port: number, encoding: string) =>
    appLibpqEnv(port, fx.appPassword, { PGCLIENTENCODING: encoding });
  const psql = (port: number, encoding: string, script: Buffer) =>
    runBytes(tools.psql!, ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=0'], env(port, encoding), script);
  const direct = async (sql: string) => {
    const d = await fx.direct();
    try {
      return (await d.query(sql)).rows as Record<string, unknown>[];
    } finally {
      await d.end();
    }
  };
  const extraProxy = (overrides: Record<string, unknown>) => startAppProxy(fx, overrides);

  before(async () => {
    fx = await startProxyFixture({}, {}, 1);
    const d = await fx.direct();
    await d.query('CREATE TABLE enc (v text); GRANT ALL ON enc TO app');
    await d.end();
    ({ proxy: sessionProxy, port: sessionPort } = await extraProxy({ pool_mode: 'session' }));
    ({ proxy: onePool, port: onePort } = await extraProxy({ default_pool_size: 1 }));
  });
  after(async () => {
    await sessionProxy?.stop();
    await onePool?.stop();
    await fx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of ['transaction', 'session'] as const) {
    test(`LATIN1 round trip in the simple protocol, SQL PREPARE/EXECUTE (${mode} pooling)`, async () => {
      const port = mode === 'session' ? sessionPort : fx.port;
      const r = await psql(
        port,
        'LATIN1',
        L(
          `INSERT INTO enc VALUES ('${mode}:caf\xe9');\n` +
            `SELECT v FROM enc WHERE v = '${mode}:caf\xe9';\n` +
            `PREPARE p(text) AS SELECT $1 || ' cr\xe8me \\\\ ''\xe0''';\n` +
            `EXECUTE p('x\xe9');\n` +
            `SHOW client_encoding;\n` +
            `\\encoding\n` +
            `SELECT 'still here';\n`,
        ),
      );
      assert.equal(r.stderr, '');
      assert.deepEqual(
        r.stdout,
        L(`${mode}:caf\xe9\nx\xe9 cr\xe8me \\\\ '\xe0'\nLATIN1\nLATIN1\nstill here\n`),
        r.stdout.toString('latin1'),
      );
      const rows = await direct(`SELECT v FROM enc WHERE v LIKE '${mode}:%'`);
      assert.deepEqual(rows, [{ v: `${mode}:café` }], 'the server stored the text converted to UTF-8');
    });
  }

  test('WIN1252: the euro sign (0x80) arrives as U+20AC and comes back as 0x80', async () => {
    const r = await psql(
      fx.port,
      'WIN1252',
      Buffer.concat([
        L("SELECT '"),
        Buffer.of(0x80),
        L("' AS e, convert_to('"),
        Buffer.of(0x80),
        L("', 'UTF8');\n"),
      ]),
    );
    assert.equal(r.stderr, '');
    assert.deepEqual(r.stdout, Buffer.concat([Buffer.of(0x80), L('|\\xe282ac\n')]));
  });

  for (const m of ['extended', 'prepared'] as const) {
    test(`LATIN1 through the extended protocol: pgbench -M ${m}`, async () => {
      const pgbench = tools.pgbench;
      assert.ok(pgbench, 'pgbench not found');
      const file = join(dir, `${m}.sql`);
      writeFileSync(
        file,
        L(
          `\\set n random(1, 9)\nINSERT INTO enc VALUES ('pgbench-${m}-caf\xe9-' || :n);\nSELECT v FROM enc WHERE v LIKE 'pgbench-${m}-caf\xe9-%' LIMIT 1;\n`,
        ),
      );
      for (const port of [fx.port, sessionPort]) {
        const r = await runBytes(
          pgbench,
          ['-n', '-M', m, '-t', '5', '-c', '2', '-f', file],
          env(port, 'LATIN1'),
        );
        assert.equal(r.code, 0, r.stderr);
      }
      const rows = await direct(`SELECT count(*)::int AS n FROM enc WHERE v LIKE 'pgbench-${m}-café-_'`);
      assert.deepEqual(rows, [{ n: 20 }]);
    });
  }

  test('LISTEN/NOTIFY of a LATIN1 client: channel and payload in its encoding', async () => {
    const r = await psql(
      fx.port,
      'LATIN1',
      L(`LISTEN "caf\xe9";\nNOTIFY "caf\xe9", 'cr\xe8me';\nSELECT 1;\n`),
    );
    assert.equal(r.stderr, '');
    assert.match(
      r.stdout.toString('latin1'),
      /Asynchronous notification "caf\xe9" with payload "cr\xe8me" received/,
    );
  });

  test('a replica in the read set serves LATIN1 reads', async () => {
    let last = '';
    for (let i = 0; i < 100; i++) {
      const r = await psql(fx.port, 'LATIN1', L(`SELECT pg_is_in_recovery(), 'caf\xe9';\n`));
      assert.equal(r.stderr, '');
      last = r.stdout.toString('latin1');
      if (last === 't|caf\xe9\n') break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(last, 't|caf\xe9\n');
  });

  test('SET client_encoding is replayed per client on a shared server connection', async () => {
    const connect = async () => {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: onePort,
        user: 'app',
        password: fx.appPassword,
        database: 'app',
      });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    };
    const a = await connect();
    const b = await connect();
    const one = async (c: pg.Client, sql: string) =>
      Object.values((await c.query(sql)).rows[0] as object)[0] as string;
    try {
      await a.query("SET client_encoding = 'latin1'");
      await b.query("SET search_path = 'café ☃', public");
      assert.equal(await one(a, 'SHOW client_encoding'), 'LATIN1');
      // b's setting is replayed after a's LATIN1: read as UTF-8, not as LATIN1.
      assert.equal(await one(b, 'SHOW search_path'), '"café ☃", public');
      assert.equal(await one(b, 'SHOW client_encoding'), 'UTF8');
      assert.equal(await one(b, 'SELECT chr(233)'), 'é');
      assert.equal(await one(a, 'SELECT chr(233)'), '\uFFFD', 'a gets the LATIN1 byte 0xE9');
      await a.query("SET client_encoding = 'WIN1252'");
      assert.equal(await one(b, 'SHOW client_encoding'), 'UTF8');
      assert.equal(await one(a, 'SHOW client_encoding'), 'WIN1252');
    } finally {
      await a.end();
      await b.end();
    }
  });

  test('SJIS (and the other encodings whose characters hold ASCII bytes) are refused', async () => {
    const atLogin = await psql(fx.port, 'SJIS', L('SELECT 1;\n'));
    assert.notEqual(atLogin.code, 0);
    assert.match(atLogin.stderr, /client_encoding SJIS is not supported through pgscale/);
    const set = await psql(
      fx.port,
      'UTF8',
      L("SET client_encoding TO 'SJIS';\nSHOW client_encoding;\nSET NAMES 'big5';\nSELECT 'alive';\n"),
    );
    assert.match(set.stderr, /SJIS is not supported through pgscale/);
    assert.match(set.stderr, /BIG5 is not supported through pgscale/);
    assert.equal(set.stdout.toString(), 'UTF8\nalive\n');
    const behind = await psql(
      fx.port,
      'UTF8',
      L("SELECT set_config('client_encoding', 'GBK', false);\nSELECT 'not reached';\n"),
    );
    assert.match(behind.stderr, /FATAL: {2}client_encoding GBK is not supported through pgscale/);
    assert.ok(!behind.stdout.toString().includes('not reached'));
    // The server connection that switched was dropped: nobody inherits GBK.
    for (let i = 0; i < 6; i++) {
      const r = await psql(fx.port, 'UTF8', L('SHOW client_encoding;\n'));
      assert.equal(r.stdout.toString(), 'UTF8\n');
    }
  });
});
