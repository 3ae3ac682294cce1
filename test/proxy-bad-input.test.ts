/**
 * Hostile input to the proxy: one test per row of the bad-input catalogue (cases.md §4a), each
 * asserting the expected reply (a FATAL ErrorResponse with the right SQLSTATE then a close, or a
 * silent close where the protocol forbids a reply, within 2 s and never a hang), with the oracles
 * applied cheaply around every case:
 * - O2/O5: a canary client opened before the case, holding an open transaction, still works after;
 * - O1: the proxy still accepts new logins (and one test repeats bad inputs 300 times each and
 *   checks the open-client count and the heap come back);
 * - O3: the test server runs with log_statement = 'all'; hostile unauthenticated connections send
 *   a unique marker in a Query, and the server log must never show it.
 *
 * Rows covered here: 1–10, 11 (3.2 client half), 12–14, 15–16 (TLS, with a throwaway self-signed
 * certificate made by the openssl CLI; skipped without it), 17–30, 31 (by reference:
 * test/proxy.test.ts "cancel reaches the query of the client that asked, and no other"), 32 and
 * 39 (scaled down), 33–38, 40, 42–44, and O1 with 300 repetitions of six bad inputs.
 * Not covered, and why:
 * - 11, the "3.2 backends" half: the test server is PostgreSQL 15 (protocol 3.0 only); the proxy's
 *   own 3.2 keys and cancel end to end are covered.
 * - 16, direct TLS with ALPN `postgresql`: the proxy has no direct-TLS support, so any ClientHello
 *   is refused as an invalid startup packet; that refusal is what is asserted.
 * - 21, a role that expires while the proxy already holds pooled connections for it: the proxy
 *   checks VALID UNTIL only through the server's login, so a pooled connection is reused (as
 *   PgBouncer does with auth_file); only a fresh login with an expired role is asserted.
 * - 32 at 10k cancels/s and 39 at 5k sockets: scaled to 2000 cancels and 200 sockets so the
 *   suite stays fast; the full sizes belong to the load benchmarks.
 * - 40, "admin/metrics port still answers": the admin console shares the proxy port and the
 *   client limit; there is no separate admin or metrics port to check.
 * - 41 (malicious server): in test/proxy-fake-server.test.ts, against a scriptable fake server.
 * - O1's RSS/fd/handle baselines and O2's pgbench p99 are approximated by the proxy's open-client
 *   count, the heap (with a real gc), and the canary transaction, to keep the suite fast.
 */
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startProxyFixture, proxyConfig } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { tempDir } from './harness.js';
import { RawClient, fe, messageOf, sleep, sqlstateOf, startupPacket } from './raw-client.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { databasesResolver } from '../src/proxy/resolver.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import {
  encodeCancelRequest,
  encodeGSSENCRequest,
  encodeSSLRequest,
} from '../src/protocol/startup-messages.js';
import { encodeAuthResponse } from '../src/protocol/auth-messages.js';
import { errorField } from '../src/protocol/error-response.js';
import { PROTOCOL_3_0, PROTOCOL_3_2, protocolVersion } from '../src/protocol/limits.js';
import { deriveKeys, hmacSha256, saltedPassword, sha256, xor } from '../src/protocol/scram-crypto.js';

const MAX_PACKET = 1 << 20;

// Precise heap measurements: a real gc() when the flag can be switched on at run time.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (() => void) | undefined;
function memory(): number {
  gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
const MB = 1024 * 1024;

let seq = 0;
/** A unique string to put in a hostile Query and look for in the server log. */
function marker(): string {
  return `pgscale_hostile_${process.pid}_${++seq}_${randomBytes(4).toString('hex')}`;
}
const markerQuery = (m: string) => fe({ name: 'Query', query: `SELECT '${m}'` });

/** A startup packet with a hand-made body (after the version), for malformed layouts. */
function rawStartup(body: Buffer, version = PROTOCOL_3_0): Buffer {
  const b = Buffer.alloc(8 + body.length);
  b.writeUInt32BE(8 + body.length, 0);
  b.writeUInt32BE(version, 4);
  body.copy(b, 8);
  return b;
}
/** A typed message header with any claimed length, followed by `body`. */
function typedHeader(type: string, claimed: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeUInt32BE(claimed >>> 0, 1);
  return Buffer.concat([h, body]);
}
const cstr = (s: string | Buffer) =>
  Buffer.concat([typeof s === 'string' ? Buffer.from(s) : s, Buffer.from([0])]);

describe('proxy, hostile input (catalogue 4a)', () => {
  let fx: ProxyFixture;
  let canary: pg.Client;
  let logPath: string;
  let logStart = 0;
  const markers: string[] = [];

  const appParams = { user: 'app', database: 'app' };
  const raw = () => RawClient.connect(fx.port);
  const authed = async (extra: Record<string, string> = {}) => {
    const c = await raw();
    await c.loginScram({ ...appParams, ...extra }, fx.appPassword);
    return c;
  };
  /** A marker for a hostile connection's Query, checked against the server log at the end (O3). */
  const hostileMarker = () => {
    const m = marker();
    markers.push(m);
    return m;
  };
  const serverLog = () => readFileSync(logPath, 'utf8');
  /** Waits until the server has logged a statement sent after the ones we look for. */
  const logBarrier = async () => {
    const b = marker();
    const d = await fx.direct();
    await d.query(`SELECT '${b}'`);
    await d.end();
    for (let i = 0; i < 100 && !serverLog().includes(b); i++) await sleep(20);
  };
  /** Waits until the proxy's open client count is back to `n` (or fails after 3 s). */
  const clientsBackTo = async (n: number) => {
    for (let i = 0; i < 150 && fx.proxy.clients.size > n; i++) await sleep(20);
    assert.ok(fx.proxy.clients.size <= n, `open clients ${fx.proxy.clients.size}, baseline ${n}`);
  };
  const extraUsers = () =>
    new Map([
      ['app', fx.appPassword],
      ['postgres', fx.superPassword],
    ]);
  /** A second proxy in front of the same server, with other settings. */
  const extraProxy = async (overrides: Record<string, unknown>) => {
    const port = await findFreePortBlock(1);
    const cfg = proxyConfig(fx.serverPort, port, overrides);
    const proxy = new ProxyServer({
      config: cfg,
      resolve: databasesResolver(cfg),
      inlineUsers: extraUsers(),
      loginBackoff: false,
    });
    await proxy.start();
    return { proxy, port };
  };

  before(async () => {
    fx = await startProxyFixture(
      { max_packet_size: MAX_PACKET, client_login_timeout: 1, default_pool_size: 8 },
      { log_statement: 'all' },
    );
    logPath = fx.tc.cluster.paths('s0n0').log;
    const d = await fx.direct();
    await d.query(`
      CREATE TABLE canary (x int);
      CREATE TABLE kv (k int PRIMARY KEY, v text);
      CREATE TABLE copied (x int);
      CREATE ROLE other NOLOGIN;
      GRANT other TO app;
      CREATE SCHEMA evil AUTHORIZATION app;
      CREATE SCHEMA "Odd 'Name" AUTHORIZATION app;
      CREATE ROLE expired LOGIN PASSWORD 'expired-pw' VALID UNTIL '2001-01-01';
      GRANT ALL ON canary, kv, copied TO app`);
    await d.end();
    // The server log from here on is the proxy's doing (cluster bootstrap and our own setup,
    // which set passwords, come before).
    await logBarrier();
    logStart = statSync(logPath).size;
  });
  after(async () => {
    // O3 over the whole file: no hostile marker reached the server.
    if (fx) {
      await logBarrier();
      const log = serverLog();
      for (const m of markers) assert.ok(!log.includes(m), `statement ${m} reached the server`);
      await fx.close();
    }
  });

  beforeEach(async () => {
    canary = await fx.client();
    await canary.query('BEGIN');
    await canary.query('INSERT INTO canary VALUES (1)');
  });
  afterEach(async () => {
    // O2/O5: the canary's transaction is intact; O1: new logins still work.
    const r = await canary.query<{ n: number }>('SELECT count(*)::int AS n FROM canary');
    assert.equal(r.rows[0]!.n, 1, 'canary transaction intact');
    await canary.query('ROLLBACK');
    await canary.end();
    const c = await fx.client();
    assert.equal((await c.query('SELECT 41 + 1 AS x')).rows[0].x, 42);
    await c.end();
  });

  /** O3 for the markers of one case: none of them in the server log. */
  const assertNeverLogged = async (...ms: string[]) => {
    await logBarrier();
    const log = serverLog();
    for (const m of ms) assert.ok(!log.includes(m), `statement ${m} reached the server`);
  };

  // ------------------------------------------------------------------ framing

  test('1: typed message with length 0-3 → 08P01, close (before and after auth)', async () => {
    for (const len of [0, 1, 2, 3]) {
      const m = hostileMarker();
      const c = await raw();
      c.send(startupPacket(appParams));
      await c.nextAuth();
      c.send(Buffer.concat([typedHeader('p', len), markerQuery(m)]));
      await c.expectFatalThenClose('08P01');
      const a = await authed();
      a.send(Buffer.concat([typedHeader('Q', len), markerQuery(m)]));
      await a.expectFatalThenClose('08P01');
      await assertNeverLogged(m);
    }
  });

  test('2: length 0x7FFFFFFF / 0xFFFFFFFF → 08P01, close, no allocation by claimed length', async () => {
    const before = memory();
    for (const len of [0x7fffffff, 0xffffffff]) {
      const c = await raw();
      c.send(startupPacket(appParams));
      await c.nextAuth();
      c.send(typedHeader('p', len, Buffer.alloc(1000, 0x41)));
      await c.expectFatalThenClose('08P01');
      const a = await authed();
      a.send(typedHeader('Q', len, Buffer.alloc(1000, 0x41)));
      await a.expectFatalThenClose('08P01');
      const s = await raw();
      s.send(
        Buffer.concat([
          Buffer.from([len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255]),
          Buffer.alloc(100),
        ]),
      );
      await s.expectClose();
    }
    const grew = (memory() - before) / MB;
    assert.ok(grew < (gc ? 8 : 50), `memory grew ${grew.toFixed(1)} MB`);
  });

  test('3: StartupMessage length < 8 or > 10000 → close (08P01 at most), no allocation', async () => {
    const before = memory();
    for (const len of [0, 4, 7, 10001, 1_000_000, 0x7fffffff]) {
      const c = await raw();
      const h = Buffer.alloc(8);
      h.writeUInt32BE(len >>> 0, 0);
      h.writeUInt32BE(PROTOCOL_3_0, 4);
      c.send(Buffer.concat([h, Buffer.alloc(64, 0x41)]));
      const got = await c.expectClose();
      assert.ok(got.length <= 1, 'at most one message');
      if (got[0]) assert.equal(sqlstateOf(got[0]), '08P01');
    }
    const grew = (memory() - before) / MB;
    assert.ok(grew < (gc ? 8 : 50), `memory grew ${grew.toFixed(1)} MB`);
  });

  test('4: claimed length > bytes sent, then idle → closed at the login timeout, memory bounded', async () => {
    const before = memory();
    const t0 = performance.now();
    const a = await raw();
    a.send(Buffer.from([0, 0, 0x27, 0x10, 0, 3])); // startup packet of 10000 bytes, 6 sent
    const b = await raw();
    b.send(startupPacket(appParams));
    await b.nextAuth();
    b.send(typedHeader('p', 9000, Buffer.alloc(10, 0x41)));
    const ga = await a.expectClose(3000);
    const gb = await b.expectClose(3000);
    assert.ok(performance.now() - t0 >= 900, 'not before the login timeout');
    for (const g of [ga, gb]) {
      assert.ok(
        g.length <= 1 && (g.length === 0 || sqlstateOf(g[0]) === '08006'),
        g.map((m) => m.type).join(),
      );
    }
    const grew = (memory() - before) / MB;
    assert.ok(grew < (gc ? 8 : 50), `memory grew ${grew.toFixed(1)} MB`);
  });

  test('5: a login and queries in 1-byte segments, and many messages coalesced in one write, parse correctly', async () => {
    const c = await raw();
    await c.sendChunks(encodeSSLRequest(), 1);
    assert.equal(await c.readByte(), 'N');
    await c.scramUpToFinal(appParams, fx.appPassword, { chunk: 1 });
    const fin = await c.nextAuth();
    assert.equal(fin.name, 'AuthenticationSASLFinal');
    await c.until('Z');
    await c.sendChunks(fe({ name: 'Query', query: 'SELECT 1 AS one; SELECT 2' }), 1);
    const r1 = await c.until('Z');
    assert.deepEqual(RawClient.rows(r1), [['1'], ['2']]);
    await c.sendChunks(
      fe(
        { name: 'Parse', statement: 's1', query: 'SELECT $1::int * 2', paramTypes: [] },
        {
          name: 'Bind',
          portal: '',
          statement: 's1',
          paramFormats: [],
          params: [Buffer.from('21')],
          resultFormats: [],
        },
        { name: 'Execute', portal: '', maxRows: 0 },
        { name: 'Sync' },
      ),
      1,
    );
    assert.deepEqual(RawClient.rows(await c.until('Z')), [['42']]);
    // 200 queries and 50 extended pipelines in one write.
    const msgs = [];
    for (let i = 0; i < 200; i++) msgs.push(fe({ name: 'Query', query: `SELECT ${i}` }));
    for (let i = 0; i < 50; i++) {
      msgs.push(
        fe(
          {
            name: 'Bind',
            portal: '',
            statement: 's1',
            paramFormats: [],
            params: [Buffer.from(String(i))],
            resultFormats: [],
          },
          { name: 'Execute', portal: '', maxRows: 0 },
          { name: 'Sync' },
        ),
      );
    }
    c.send(Buffer.concat(msgs));
    const rows: string[] = [];
    for (let i = 0; i < 250; i++) rows.push(...RawClient.rows(await c.until('Z')).map((r) => r[0]!));
    assert.deepEqual(rows, [
      ...Array.from({ length: 200 }, (_, i) => String(i)),
      ...Array.from({ length: 50 }, (_, i) => String(i * 2)),
    ]);
    c.send(fe({ name: 'Terminate' }));
    await c.expectClose();
  });

  // ------------------------------------------------------------------ startup packet

  test('6: startup parameters without the final NUL, or an odd key/value count → 08P01 layout', async () => {
    for (const body of [
      Buffer.from('user\0app\0database\0app\0'), // no terminator
      Buffer.from('user\0app\0lonely\0\0'), // odd count
      Buffer.from('user\0app'), // unterminated value
      Buffer.alloc(0), // nothing at all
    ]) {
      const c = await raw();
      c.send(Buffer.concat([rawStartup(body), markerQuery(hostileMarker())]));
      const e = await c.expectFatalThenClose('08P01');
      assert.match(errorField(e, 'M') ?? '', /invalid startup packet layout/);
    }
  });

  test('7: no user → 28000', async () => {
    for (const params of [{ database: 'app' }, { user: '', database: 'app' }] as Record<string, string>[]) {
      const c = await raw();
      c.send(startupPacket(params));
      await c.expectFatalThenClose('28000');
    }
  });

  test('8: user/database 10 kB long, with an embedded NUL, invalid UTF-8 → error, no crash', async () => {
    const long = 'u'.repeat(10_000);
    const cases: [Buffer, string[]][] = [
      [startupPacket({ user: long, database: 'app' }), ['08P01']],
      [startupPacket({ user: 'app', database: long }), ['08P01']],
      [
        rawStartup(
          Buffer.concat([cstr('user'), cstr('ap\0p'), cstr('database'), cstr('app'), Buffer.from([0])]),
        ),
        ['08P01'],
      ],
      [
        rawStartup(Buffer.concat([cstr('user'), cstr(Buffer.from([0x61, 0xff, 0xfe])), Buffer.from([0])])),
        ['22021'],
      ],
      [
        rawStartup(
          Buffer.concat([
            cstr('user'),
            cstr('app'),
            cstr('database'),
            cstr(Buffer.from([0xc3, 0x28])),
            Buffer.from([0]),
          ]),
        ),
        ['22021'],
      ],
    ];
    for (const [bytes, states] of cases) {
      const c = await raw();
      c.send(bytes);
      await c.expectFatalThenClose(states);
    }
    // 9000 bytes fits in a startup packet: an unknown user, refused after the SCRAM exchange.
    const c = await raw();
    await c.scramUpToFinal({ user: 'v'.repeat(9000), database: 'app' }, 'x');
    await c.expectFatalThenClose('28P01');
  });

  test('9: protocol 2.0 and 4.0 → 0A000 unsupported frontend protocol', async () => {
    for (const v of [protocolVersion(2, 0), protocolVersion(4, 0), protocolVersion(1, 0)]) {
      const c = await raw();
      c.send(startupPacket(appParams, v));
      const e = await c.expectFatalThenClose('0A000');
      assert.match(errorField(e, 'M') ?? '', /unsupported frontend protocol/);
    }
  });

  test('10: protocol 3.9 + _pq_.x=1 → one NegotiateProtocolVersion listing _pq_.x, session proceeds', async () => {
    const c = await raw();
    const rest = await c.loginScram({ ...appParams, '_pq_.x': '1' }, fx.appPassword, {
      version: protocolVersion(3, 9),
    });
    const v = c.received.filter((m) => m.type === 'v');
    assert.equal(v.length, 1, 'exactly one NegotiateProtocolVersion');
    assert.deepEqual(v[0]!.msg, {
      name: 'NegotiateProtocolVersion',
      version: PROTOCOL_3_2,
      unsupportedOptions: ['_pq_.x'],
    });
    const key = rest.find((m) => m.type === 'K');
    assert.ok(key?.msg?.name === 'BackendKeyData' && key.msg.secretKey.length === 32, '3.2 keys');
    assert.deepEqual(RawClient.rows(await c.query('SELECT 7')), [['7']]);
    c.destroy();
  });

  test('11: protocol 3.2 client: cancel key 4..256 bytes (32), cancel works end to end; 3.0 gets 4 bytes', async () => {
    const c30 = await raw();
    const k30 = (await c30.loginScram(appParams, fx.appPassword)).find((m) => m.type === 'K');
    assert.ok(k30?.msg?.name === 'BackendKeyData' && k30.msg.secretKey.length === 4);
    c30.destroy();
    const c = await raw();
    const rest = await c.loginScram(appParams, fx.appPassword, { version: PROTOCOL_3_2 });
    const k = rest.find((m) => m.type === 'K');
    assert.ok(k?.msg?.name === 'BackendKeyData');
    const { processId, secretKey } = k.msg;
    assert.ok(secretKey.length >= 4 && secretKey.length <= 256);
    assert.equal(c.received.filter((m) => m.type === 'v').length, 0, 'no negotiation for 3.2');
    c.send(fe({ name: 'Query', query: 'SELECT pg_sleep(10)' }));
    await sleep(200);
    const cancel = async (key: Buffer) => {
      const x = await raw();
      x.send(encodeCancelRequest({ processId, secretKey: key }));
      await x.expectSilentClose();
    };
    await cancel(secretKey.subarray(0, 4)); // a 3.0-sized prefix must not do
    await cancel(Buffer.from(secretKey).fill(0, 28)); // nor a wrong tail
    assert.equal(await c.next(300), null, 'the query still runs');
    const t0 = performance.now();
    await cancel(secretKey);
    await c.expectError('57014', { allowBefore: 'T' });
    assert.ok(performance.now() - t0 < 2000);
    await c.until('Z');
    assert.deepEqual(RawClient.rows(await c.query('SELECT 3')), [['3']]);
    c.destroy();
  });

  // ------------------------------------------------------------------ encryption negotiation

  test('12: SSLRequest+Startup+Query in one write → close, nothing executed (CVE-2021-3935)', async () => {
    const m = hostileMarker();
    const c = await raw();
    c.send(Buffer.concat([encodeSSLRequest(), startupPacket(appParams), markerQuery(m)]));
    const b = await c.readByte();
    assert.ok(b === null || b === 'N', `got ${b}`);
    const got = await c.expectClose();
    assert.ok(
      got.every((x) => x.type === 'E'),
      'no authentication, no result',
    );
    await assertNeverLogged(m);
  });

  test('13: SSLRequest twice; GSSENC→SSL→GSSENC → close on the repeat', async () => {
    const a = await raw();
    a.send(encodeSSLRequest());
    assert.equal(await a.readByte(), 'N');
    a.send(encodeSSLRequest());
    assert.equal(await a.readByte(), null);
    await a.expectSilentClose();
    const b = await raw();
    b.send(encodeGSSENCRequest());
    assert.equal(await b.readByte(), 'N');
    b.send(encodeSSLRequest());
    assert.equal(await b.readByte(), 'N');
    b.send(encodeGSSENCRequest());
    assert.equal(await b.readByte(), null);
    await b.expectSilentClose();
  });

  test('14: GSSENCRequest (no GSS support) → N, then SSLRequest and a login work', async () => {
    const c = await raw();
    c.send(encodeGSSENCRequest());
    assert.equal(await c.readByte(), 'N');
    c.send(encodeSSLRequest());
    assert.equal(await c.readByte(), 'N');
    await c.loginScram(appParams, fx.appPassword);
    assert.deepEqual(RawClient.rows(await c.query('SELECT 5')), [['5']]);
    c.destroy();
  });

  // ------------------------------------------------------------------ authentication

  test('17: Query/Parse/Terminate before authentication completes → 08P01, nothing forwarded', async () => {
    const m1 = hostileMarker();
    const m2 = hostileMarker();
    const m3 = hostileMarker();
    // In the same write as the startup packet.
    const a = await raw();
    a.send(Buffer.concat([startupPacket(appParams), markerQuery(m1)]));
    await a.expectFatalThenClose('08P01', { allowBefore: 'R' });
    // Instead of the SASL initial response.
    const b = await raw();
    b.send(startupPacket(appParams));
    await b.nextAuth();
    b.send(fe({ name: 'Parse', statement: '', query: `SELECT '${m2}'`, paramTypes: [] }, { name: 'Sync' }));
    await b.expectFatalThenClose('08P01');
    // Between the SASL messages.
    const c = await raw();
    c.send(startupPacket(appParams));
    await c.nextAuth();
    c.send(
      encodeAuthResponse({
        name: 'SASLInitialResponse',
        mechanism: 'SCRAM-SHA-256',
        data: Buffer.from('n,,n=,r=abcdefghijklmnop'),
      }),
    );
    await c.nextAuth();
    c.send(markerQuery(m3));
    await c.expectFatalThenClose('08P01');
    // Terminate.
    const d = await raw();
    d.send(startupPacket(appParams));
    await d.nextAuth();
    d.send(fe({ name: 'Terminate' }));
    const got = await d.expectClose();
    assert.ok(got.length === 0 || sqlstateOf(got[0]) === '08P01');
    await assertNeverLogged(m1, m2, m3);
  });

  test('18: wrong password (SCRAM; md5 on a second proxy) → 28P01, generic message', async () => {
    const c = await raw();
    await c.scramUpToFinal(appParams, 'wrong');
    const e = await c.expectFatalThenClose('28P01');
    assert.equal(errorField(e, 'M'), 'password authentication failed for user "app"');
    const md5 = await extraProxy({ auth_type: 'md5' });
    try {
      const bad = new pg.Client({ host: '127.0.0.1', port: md5.port, ...appParams, password: 'wrong' });
      await assert.rejects(bad.connect(), (err: Error & { code?: string }) => {
        assert.equal(err.code, '28P01');
        assert.equal(err.message, 'password authentication failed for user "app"');
        return true;
      });
      const good = new pg.Client({
        host: '127.0.0.1',
        port: md5.port,
        ...appParams,
        password: fx.appPassword,
      });
      await good.connect();
      assert.equal((await good.query('SELECT 1 AS x')).rows[0].x, 1);
      await good.end();
    } finally {
      await md5.proxy.stop();
    }
  });

  test('19: unknown user → 28P01, same message and salt shape as a real user, no backend login', async () => {
    const serverFirst = async (user: string) => {
      const c = await raw();
      c.send(startupPacket({ user, database: 'app' }));
      const sasl = await c.nextAuth();
      assert.deepEqual(sasl, { name: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] });
      c.send(
        encodeAuthResponse({
          name: 'SASLInitialResponse',
          mechanism: 'SCRAM-SHA-256',
          data: Buffer.from('n,,n=,r=nonce'),
        }),
      );
      const cont = await c.nextAuth();
      assert.ok(cont.name === 'AuthenticationSASLContinue');
      c.destroy();
      const [, s, i] = cont.data.toString().split(',');
      return { s: s!, i: i! };
    };
    const real = await serverFirst('app');
    const ghost = await serverFirst('mallory_unknown');
    const ghost2 = await serverFirst('mallory_unknown');
    assert.equal(ghost.i, real.i, 'same iteration count');
    assert.equal(ghost.s.length, real.s.length, 'same salt length');
    assert.equal(ghost.s, ghost2.s, 'a stable mock salt');
    const timeFail = async (user: string, password: string) => {
      const c = await raw();
      await c.scramUpToFinal({ user, database: 'app' }, password);
      const t0 = performance.now();
      const e = await c.expectFatalThenClose('28P01');
      return { ms: performance.now() - t0, msg: errorField(e, 'M')!.replace(`"${user}"`, 'U') };
    };
    const wrong: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      const w = await timeFail('app', 'nope');
      const u = await timeFail('mallory_unknown', 'nope');
      assert.equal(w.msg, u.msg);
      wrong.push(w.ms);
      unknown.push(u.ms);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[2]!;
    assert.ok(
      Math.abs(median(wrong) - median(unknown)) < 25,
      `timing ${median(wrong)} vs ${median(unknown)} ms`,
    );
    await logBarrier();
    assert.ok(!serverLog().includes('mallory_unknown'), 'no backend login attempted for an unknown user');
  });

  test('20: unknown database → 3D000 only after successful authentication', async () => {
    const c = await raw();
    await c.scramUpToFinal({ user: 'app', database: 'nosuchdb' }, fx.appPassword);
    assert.equal((await c.nextAuth()).name, 'AuthenticationSASLFinal');
    await c.expectFatalThenClose('3D000');
    const d = await raw();
    await d.scramUpToFinal({ user: 'app', database: 'nosuchdb' }, 'wrong');
    await d.expectFatalThenClose('28P01');
  });

  test('21: role past VALID UNTIL → 28P01 (auth_file user)', async () => {
    const dir = tempDir();
    const userlist = join(dir, 'userlist.txt');
    writeFileSync(userlist, '"expired" "expired-pw"\n');
    const p = await extraProxy({ auth_file: userlist });
    try {
      for (let i = 0; i < 2; i++) {
        const c = new pg.Client({
          host: '127.0.0.1',
          port: p.port,
          user: 'expired',
          database: 'app',
          password: 'expired-pw',
        });
        c.on('error', () => undefined);
        await assert.rejects(c.connect(), (e: Error & { code?: string }) => e.code === '28P01');
      }
    } finally {
      await p.proxy.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('22: wrong password on a second login that would reuse a pooled backend → 28P01', async () => {
    const first = await fx.client();
    await first.query('SELECT 1');
    await first.end();
    const c = await raw();
    await c.scramUpToFinal(appParams, 'not-the-password');
    await c.expectFatalThenClose('28P01');
    const bad = new pg.Client({ host: '127.0.0.1', port: fx.port, ...appParams, password: 'nope' });
    bad.on('error', () => undefined);
    await assert.rejects(bad.connect(), (e: Error & { code?: string }) => e.code === '28P01');
  });

  test('23: SASL unknown mechanism, SASLResponse first, empty message, repeated SASLInitialResponse → 08P01/28000, close', async () => {
    const afterSasl = async () => {
      const c = await raw();
      c.send(startupPacket(appParams));
      await c.nextAuth();
      return c;
    };
    const initial = (mechanism: string, data: string) =>
      encodeAuthResponse({ name: 'SASLInitialResponse', mechanism, data: Buffer.from(data) });
    const states = ['08P01', '28000'];
    let c = await afterSasl();
    c.send(initial('SCRAM-SHA-1', 'n,,n=,r=abc'));
    await c.expectFatalThenClose(states);
    c = await afterSasl();
    c.send(initial('SCRAM-SHA-256-PLUS', 'p=tls-server-end-point,,n=,r=abc'));
    await c.expectFatalThenClose(states);
    c = await afterSasl();
    c.send(encodeAuthResponse({ name: 'SASLResponse', data: Buffer.from('c=biws,r=abc,p=AAAA') }));
    await c.expectFatalThenClose(states);
    c = await afterSasl();
    c.send(typedHeader('p', 4));
    await c.expectFatalThenClose(states);
    c = await afterSasl();
    c.send(initial('SCRAM-SHA-256', 'n,,n=,r=abc'));
    await c.nextAuth();
    c.send(initial('SCRAM-SHA-256', 'n,,n=,r=abc'));
    await c.expectFatalThenClose(states);
  });

  test('24: SCRAM client-first with huge lengths, bad base64, missing n=/r=, m= → close, no crash', async () => {
    const afterSasl = async () => {
      const c = await raw();
      c.send(startupPacket(appParams));
      await c.nextAuth();
      return c;
    };
    const states = ['08P01', '28000', '0A000', '28P01'];
    for (const first of [
      `n,,n=,r=${'A'.repeat(5000)}`,
      `n,,n=${'u'.repeat(9000)},r=abc`,
      'n,,r=abc',
      'n,,n=,',
      'n,,n=',
      'n,,m=ext,n=,r=abc',
      'n,a=admin,n=,r=abc',
      'x,,n=,r=abc',
      '',
    ]) {
      const c = await afterSasl();
      c.send(
        encodeAuthResponse({
          name: 'SASLInitialResponse',
          mechanism: 'SCRAM-SHA-256',
          data: Buffer.from(first),
        }),
      );
      await c.expectFatalThenClose(states);
    }
    // A SASLInitialResponse whose data length field claims far more than the message holds.
    const c = await afterSasl();
    const lenField = Buffer.alloc(4);
    lenField.writeInt32BE(0x7fffffff);
    const body = Buffer.concat([cstr('SCRAM-SHA-256'), lenField, Buffer.from('n,,n=,r=abc')]);
    c.send(Buffer.concat([typedHeader('p', 4 + body.length), body]));
    await c.expectFatalThenClose(states);
    // Bad base64 and a missing proof in the client-final message.
    for (const make of [
      (n: string) => `c=biws,r=${n},p=!!!not-base64!!!`,
      (n: string) => `c=biws,r=${n}`,
      (n: string) => `c=%%%,r=${n},p=${Buffer.alloc(32).toString('base64')}`,
      (n: string) => `c=biws,r=${n},p=${'A'.repeat(4000)}`,
    ]) {
      const d = await afterSasl();
      d.send(
        encodeAuthResponse({
          name: 'SASLInitialResponse',
          mechanism: 'SCRAM-SHA-256',
          data: Buffer.from('n,,n=,r=abc'),
        }),
      );
      const cont = await d.nextAuth();
      assert.ok(cont.name === 'AuthenticationSASLContinue');
      const nonce = cont.data.toString().split(',')[0]!.slice(2);
      d.send(encodeAuthResponse({ name: 'SASLResponse', data: Buffer.from(make(nonce)) }));
      await d.expectFatalThenClose(states);
    }
  });

  test('25: nonce not extending the client nonce, wrong proof, proof replayed from another session → 28P01', async () => {
    /** A full SCRAM exchange where `tamper` may rewrite the client-final message. */
    const exchange = async (tamper: (final: string) => string) => {
      const c = await raw();
      c.send(startupPacket(appParams));
      await c.nextAuth();
      const nonce = 'fixedclientnonce';
      const bare = `n=,r=${nonce}`;
      c.send(
        encodeAuthResponse({
          name: 'SASLInitialResponse',
          mechanism: 'SCRAM-SHA-256',
          data: Buffer.from(`n,,${bare}`),
        }),
      );
      const cont = await c.nextAuth();
      assert.ok(cont.name === 'AuthenticationSASLContinue');
      const serverFirst = cont.data.toString();
      const [r, s, i] = serverFirst.split(',').map((x) => x.slice(2)) as [string, string, string];
      const keys = deriveKeys(await saltedPassword(fx.appPassword, Buffer.from(s, 'base64'), Number(i)));
      const without = `c=biws,r=${r}`;
      const auth = `${bare},${serverFirst},${without}`;
      const proof = xor(keys.clientKey, hmacSha256(sha256(keys.clientKey), auth));
      const final = `${without},p=${proof.toString('base64')}`;
      c.send(encodeAuthResponse({ name: 'SASLResponse', data: Buffer.from(tamper(final)) }));
      return { c, final };
    };
    // Sanity: the untampered exchange succeeds.
    const ok = await exchange((f) => f);
    assert.equal((await ok.c.nextAuth()).name, 'AuthenticationSASLFinal');
    assert.equal((await ok.c.nextAuth()).name, 'AuthenticationOk');
    ok.c.destroy();
    const replayed = ok.final;
    const a = await exchange((f) => f.replace(/r=fixedclientnonce/, 'r=othernonce'));
    await a.c.expectFatalThenClose('28P01');
    const b = await exchange((f) => f.replace(/,r=[^,]+/, ',r=fixedclientnonce'));
    await b.c.expectFatalThenClose('28P01');
    const w = await exchange((f) => f.replace(/p=.*/, `p=${Buffer.alloc(32, 7).toString('base64')}`));
    await w.c.expectFatalThenClose('28P01');
    const r = await exchange(() => replayed);
    await r.c.expectFatalThenClose('28P01');
  });

  test('26: gs2 "y" when PLUS is not advertised logs in; "p=" without PLUS fails closed', async () => {
    const scramWith = async (gs2: string, mechanism: string) => {
      const c = await raw();
      c.send(startupPacket(appParams));
      const sasl = await c.nextAuth();
      assert.deepEqual(
        sasl,
        { name: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] },
        'PLUS is not advertised',
      );
      const bare = 'n=,r=clientnonce123';
      c.send(
        encodeAuthResponse({ name: 'SASLInitialResponse', mechanism, data: Buffer.from(`${gs2}${bare}`) }),
      );
      return { c, bare };
    };
    const y = await scramWith('y,,', 'SCRAM-SHA-256');
    const cont = await y.c.nextAuth();
    assert.ok(cont.name === 'AuthenticationSASLContinue');
    const serverFirst = cont.data.toString();
    const [r, s, i] = serverFirst.split(',').map((x) => x.slice(2)) as [string, string, string];
    const keys = deriveKeys(await saltedPassword(fx.appPassword, Buffer.from(s, 'base64'), Number(i)));
    const without = `c=${Buffer.from('y,,').toString('base64')},r=${r}`;
    const proof = xor(
      keys.clientKey,
      hmacSha256(sha256(keys.clientKey), `${y.bare},${serverFirst},${without}`),
    );
    y.c.send(
      encodeAuthResponse({
        name: 'SASLResponse',
        data: Buffer.from(`${without},p=${proof.toString('base64')}`),
      }),
    );
    assert.equal((await y.c.nextAuth()).name, 'AuthenticationSASLFinal');
    assert.equal((await y.c.nextAuth()).name, 'AuthenticationOk');
    y.c.destroy();
    for (const [gs2, mech] of [
      ['p=tls-server-end-point,,', 'SCRAM-SHA-256'],
      ['p=tls-server-end-point,,', 'SCRAM-SHA-256-PLUS'],
      ['n,,', 'SCRAM-SHA-256-PLUS'],
    ] as const) {
      const { c } = await scramWith(gs2, mech);
      await c.expectFatalThenClose(['08P01', '28000']);
    }
  });

  // ------------------------------------------------------------------ startup settings

  test('27: search_path in startup applies as PostgreSQL applies it, to that client only; no SQL injection', async () => {
    const schemas = async (c: pg.Client) =>
      (await c.query<{ s: string }>("SELECT array_to_string(current_schemas(false), '|') AS s")).rows[0]!.s;
    for (const options of [
      '-c search_path=evil,public',
      '-c search_path=EVIL,\\ "Odd\\ \'Name",public',
      '-c search_path=',
    ]) {
      const viaProxy = await fx.client({ options });
      const direct = await fx.direct({ options, user: 'app', password: fx.appPassword });
      assert.deepEqual(await schemas(viaProxy), await schemas(direct), options);
      await viaProxy.end();
      await direct.end();
    }
    const evil = await fx.client({ options: '-c search_path=evil,public' });
    assert.equal(await schemas(evil), 'evil|public');
    // Quotes in start-up values stay data: a bad list is refused as PostgreSQL refuses it, and
    // application_name is replayed as a literal.
    const bad = await raw();
    bad.send(startupPacket({ ...appParams, search_path: "public'; SET ROLE postgres; --" }));
    await bad.expectFatalThenClose('22023', { allowBefore: '' });
    const inj = await raw();
    await inj.loginScram({ ...appParams, application_name: "x'); DROP TABLE kv; --" }, fx.appPassword);
    const who = RawClient.rows(await inj.query("SELECT current_user, current_setting('application_name')"));
    assert.deepEqual(who, [['app', "x'); DROP TABLE kv; --"]]);
    inj.destroy();
    // Every other server connection (all of them held at once) has the default search_path.
    const others = await Promise.all(Array.from({ length: 6 }, () => fx.client()));
    await Promise.all(others.map((o) => o.query('BEGIN')));
    for (const o of others) {
      assert.equal((await o.query('SHOW search_path')).rows[0].search_path, '"$user", public');
      assert.equal((await o.query('SELECT current_user AS u')).rows[0].u, 'app');
    }
    await Promise.all(others.map((o) => o.end()));
    await evil.end();
    const d = await fx.direct();
    assert.equal(
      (await d.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'kv'"))
        .rows[0]!.n,
      1,
    );
    await d.end();
  });

  test('28: options=-c role / session_authorization → rejected before authentication; unknown GUC → the server error after it', async () => {
    for (const params of [
      { options: '-c role=postgres' },
      { options: '-c session_authorization=postgres' },
      { options: '--role=postgres' },
      { options: '-c statement_timeout=1 role=postgres' },
      { role: 'postgres' },
      { session_authorization: 'postgres' },
      { options: '-c pgscale.no_such=1' },
    ] as Record<string, string>[]) {
      const c = await raw();
      c.send(startupPacket({ ...appParams, ...params }));
      await c.expectFatalThenClose(['08P01', '0A000', '42704'], { allowBefore: '' });
    }
    // Settings the proxy does not know go to the server, as PostgreSQL itself judges start-up
    // settings: refused with its own error once the client has authenticated, never applied.
    for (const [params, code] of [
      [{ options: '-c\\ role=postgres' }, '42704'],
      [{ options: '-c no_such_guc=1' }, '42704'],
      [{ no_such_param: '1' }, '42704'],
      [{ is_superuser: 'on' }, '55P02'],
      [{ options: '-c work_mem=lots' }, '22023'],
    ] as [Record<string, string>, string][]) {
      const c = await raw();
      await c.scramUpToFinal({ ...appParams, ...params }, fx.appPassword);
      await c.expectFatalThenClose(code, { allowBefore: 'R' });
    }
  });

  test('29: replication=database / true → rejected (0A000)', async () => {
    for (const replication of ['database', 'true', 'on', '1']) {
      const c = await raw();
      c.send(startupPacket({ ...appParams, replication }));
      await c.expectFatalThenClose('0A000');
    }
  });

  // ------------------------------------------------------------------ cancel

  test('30: CancelRequest with a random key, a 12-byte packet, a 300-byte key → silent close, no effect', async () => {
    const victim = await raw();
    const rest = await victim.loginScram(appParams, fx.appPassword);
    const k = rest.find((m) => m.type === 'K');
    assert.ok(k?.msg?.name === 'BackendKeyData');
    victim.send(fe({ name: 'Query', query: 'SELECT pg_sleep(0.8) AS slept' }));
    await sleep(100);
    const shortPacket = Buffer.alloc(12);
    shortPacket.writeUInt32BE(12, 0);
    shortPacket.writeUInt32BE(80877102, 4);
    shortPacket.writeInt32BE(k.msg.processId, 8);
    for (const bytes of [
      encodeCancelRequest({ processId: k.msg.processId, secretKey: randomBytes(4) }),
      encodeCancelRequest({ processId: k.msg.processId, secretKey: randomBytes(32) }),
      encodeCancelRequest({ processId: 999_999, secretKey: randomBytes(4) }),
      shortPacket,
      encodeCancelRequest({ processId: k.msg.processId, secretKey: randomBytes(300) }),
      Buffer.concat([
        encodeCancelRequest({ processId: k.msg.processId, secretKey: randomBytes(4) }),
        Buffer.from('junk'),
      ]),
    ]) {
      const c = await raw();
      c.send(bytes);
      await c.expectSilentClose();
    }
    const reply = await victim.until('Z', 3000);
    assert.ok(!reply.some((m) => m.type === 'E'), 'the query was not cancelled');
    assert.deepEqual(RawClient.rows(reply), [['']]);
    victim.destroy();
  });

  // 31: covered by test/proxy.test.ts, "cancel reaches the query of the client that asked, and
  // no other" (a cancel with A's key never reaches B's query on another connection).

  test('32 (scaled): 2000 bogus cancels in a burst → proxy stays responsive, cancel concurrency bounded', async () => {
    const c = await fx.client();
    const lat: number[] = [];
    let stop = false;
    const pinger = (async () => {
      while (!stop) {
        const t0 = performance.now();
        await c.query('SELECT 1');
        lat.push(performance.now() - t0);
      }
    })();
    const victim = await raw();
    const k = (await victim.loginScram(appParams, fx.appPassword)).find((m) => m.type === 'K');
    assert.ok(k?.msg?.name === 'BackendKeyData');
    const pid = k.msg.processId;
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(
        Array.from({ length: 100 }, async () => {
          const x = await raw();
          x.send(encodeCancelRequest({ processId: pid, secretKey: randomBytes(4) }));
          await x.expectClose(5000);
        }),
      );
    }
    stop = true;
    await pinger;
    await c.end();
    lat.sort((a, b) => a - b);
    const p99 = lat[Math.floor(lat.length * 0.99)] ?? 0;
    assert.ok(p99 < 250, `SELECT 1 p99 ${p99.toFixed(1)} ms during the burst`);
    assert.deepEqual(RawClient.rows(await victim.query('SELECT 9')), [['9']]);
    victim.destroy();
  });

  // ------------------------------------------------------------------ after authentication

  test('33: unknown message type byte → 08P01 (during auth and after)', async () => {
    for (const type of [0x01, 0x7f, 0x5a /* Z */, 0x54 /* T */, 0xff]) {
      const c = await raw();
      c.send(startupPacket(appParams));
      await c.nextAuth();
      c.send(Buffer.concat([Buffer.from([type]), Buffer.from([0, 0, 0, 4])]));
      await c.expectFatalThenClose('08P01');
      const a = await authed();
      a.send(Buffer.concat([Buffer.from([type]), Buffer.from([0, 0, 0, 4])]));
      await a.expectFatalThenClose('08P01');
    }
  });

  /** The message types of a reply, from the proxy and straight from the server, for the same bytes. */
  const viaBoth = async (bytes: Buffer, replies: number) => {
    const types = async (c: RawClient) => {
      c.send(bytes);
      const out: string[] = [];
      for (let i = 0; i < replies; i++) {
        const part = await c.until('Z');
        out.push(part.map((m) => (m.type === 'E' ? `E${sqlstateOf(m)}` : m.type)).join(''));
      }
      return out;
    };
    const p = await authed();
    const d = await RawClient.connect(fx.serverPort);
    await d.loginScram({ user: 'postgres', database: 'app' }, fx.superPassword);
    const [viaProxy, direct] = [await types(p), await types(d)];
    assert.deepEqual(
      RawClient.rows(await p.query('SELECT 8')),
      [['8']],
      'proxy connection usable after Sync',
    );
    p.destroy();
    d.destroy();
    return { viaProxy, direct };
  };

  test('34: simple Query inside an unsynced extended batch → same reply as PostgreSQL, no hang', async () => {
    const good = fe(
      { name: 'Parse', statement: '', query: 'SELECT 1', paramTypes: [] },
      { name: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
      { name: 'Query', query: 'SELECT 2' },
      { name: 'Execute', portal: '', maxRows: 0 },
      { name: 'Sync' },
    );
    const a = await viaBoth(good, 2);
    assert.deepEqual(a.viaProxy, a.direct);
    const bad = fe(
      { name: 'Parse', statement: '', query: 'SELEC oops', paramTypes: [] },
      { name: 'Query', query: 'SELECT 2' },
      { name: 'Sync' },
      { name: 'Query', query: 'SELECT 3' },
    );
    const b = await viaBoth(bad, 2);
    assert.deepEqual(b.viaProxy, b.direct);
  });

  test('35: Execute without Bind, Bind with too few params, Describe of an unknown statement → server error, usable after Sync', async () => {
    for (const bytes of [
      fe({ name: 'Execute', portal: 'nope', maxRows: 0 }, { name: 'Sync' }),
      fe({ name: 'Execute', portal: '', maxRows: 0 }, { name: 'Sync' }),
      fe(
        { name: 'Parse', statement: 'two', query: 'SELECT $1::int + $2::int', paramTypes: [] },
        {
          name: 'Bind',
          portal: '',
          statement: 'two',
          paramFormats: [],
          params: [Buffer.from('1')],
          resultFormats: [],
        },
        { name: 'Execute', portal: '', maxRows: 0 },
        { name: 'Sync' },
      ),
      fe({ name: 'Describe', target: 'statement', targetName: 'never_prepared' }, { name: 'Sync' }),
      fe({ name: 'Describe', target: 'portal', targetName: 'never_bound' }, { name: 'Sync' }),
      fe(
        {
          name: 'Bind',
          portal: '',
          statement: 'never_prepared',
          paramFormats: [],
          params: [],
          resultFormats: [],
        },
        { name: 'Sync' },
      ),
    ]) {
      const r = await viaBoth(bytes, 1);
      assert.deepEqual(r.viaProxy, r.direct);
      assert.match(r.viaProxy[0]!, /^.*E(26000|34000|08P01)Z$/);
    }
  });

  test('36: Parse beyond max_packet_size → 08P01 close; 64 MB of DataRows to a non-reading client is backpressured', async () => {
    const m = marker();
    const a = await authed();
    const before0 = memory();
    a.send(
      fe(
        { name: 'Parse', statement: '', query: `SELECT '${m}', '${'x'.repeat(MAX_PACKET)}'`, paramTypes: [] },
        { name: 'Sync' },
      ),
    );
    await a.expectFatalThenClose('08P01');
    assert.ok((memory() - before0) / MB < 16);
    // Just under the limit is fine.
    const b = await authed();
    b.send(fe({ name: 'Query', query: `SELECT length('${'y'.repeat(MAX_PACKET - 100)}')` }));
    assert.deepEqual(RawClient.rows(await b.until('Z')), [[String(MAX_PACKET - 100)]]);
    b.destroy();
    // A slow reader: the proxy must stop reading the server instead of buffering 64 MB.
    const s = await authed();
    const base = memory();
    s.socket.pause();
    s.send(fe({ name: 'Query', query: "SELECT repeat('z', 1048576) FROM generate_series(1, 64)" }));
    await sleep(1500);
    const held = (memory() - base) / MB;
    s.socket.resume();
    const reply = await s.until('Z', 20_000);
    assert.equal(reply.filter((x) => x.type === 'D').length, 64);
    assert.ok(held < 32, `the proxy held ${held.toFixed(1)} MB for a client that did not read`);
    s.destroy();
    await assertNeverLogged(m);
  });

  test('37: CopyData outside COPY ignored; CopyFail mid-COPY errors; RST during COPY IN commits nothing', async () => {
    const c = await authed();
    c.send(
      Buffer.concat([
        fe({ name: 'CopyData', data: Buffer.from('1\n') }, { name: 'CopyDone' }),
        fe({ name: 'Query', query: 'SELECT 11' }),
      ]),
    );
    assert.deepEqual(RawClient.rows(await c.until('Z')), [['11']]);
    c.send(fe({ name: 'Query', query: 'COPY copied FROM STDIN' }));
    await c.until('G');
    c.send(
      fe({ name: 'CopyData', data: Buffer.from('1\n2\n') }, { name: 'CopyFail', message: 'client gave up' }),
    );
    await c.expectError('57014');
    await c.until('Z');
    assert.deepEqual(RawClient.rows(await c.query('SELECT count(*) FROM copied')), [['0']]);
    // RST in the middle of COPY IN, inside a transaction and outside one.
    c.send(fe({ name: 'Query', query: 'COPY copied FROM STDIN' }));
    await c.until('G');
    c.send(fe({ name: 'CopyData', data: Buffer.from('3\n4\n') }));
    await sleep(50);
    c.reset();
    const t = await authed();
    await t.query('BEGIN');
    t.send(fe({ name: 'Query', query: 'COPY copied FROM STDIN' }));
    await t.until('G');
    t.send(fe({ name: 'CopyData', data: Buffer.from('5\n') }, { name: 'CopyDone' }));
    await t.until('Z');
    t.reset();
    const d = await fx.direct();
    for (let i = 0; i < 100; i++) {
      const busy = await d.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'app' AND query ILIKE 'COPY%' AND state <> 'idle'",
      );
      if (busy.rows[0]!.n === 0) break;
      await sleep(20);
    }
    assert.equal(
      (await d.query<{ n: number }>('SELECT count(*)::int AS n FROM copied')).rows[0]!.n,
      0,
      'nothing committed',
    );
    await d.end();
  });

  test('38: RST or Terminate mid-transaction → rolled back before reuse', async () => {
    for (const end of ['rst', 'terminate'] as const) {
      const c = await authed();
      await c.query('BEGIN');
      await c.query(`INSERT INTO kv VALUES (38, '${end}')`);
      await c.query('LOCK TABLE kv IN ACCESS EXCLUSIVE MODE');
      if (end === 'rst') c.reset();
      else {
        c.send(fe({ name: 'Terminate' }));
        await c.expectClose();
      }
      const b = await fx.client();
      let locked = true;
      for (let i = 0; i < 100 && locked; i++) {
        await b.query('BEGIN');
        try {
          await b.query('LOCK TABLE kv IN ACCESS EXCLUSIVE MODE NOWAIT');
          locked = false;
        } catch {
          await sleep(20);
        }
        await b.query('ROLLBACK');
      }
      assert.equal(locked, false, 'the lock was released within 2 s');
      assert.equal((await b.query('SELECT count(*)::int AS n FROM kv WHERE k = 38')).rows[0].n, 0);
      await b.end();
    }
  });

  test('39 (scaled): 200 slowloris sockets → closed at the login timeout; a real client logs in < 1 s meanwhile', async () => {
    const base = fx.proxy.clients.size;
    const socks = await Promise.all(Array.from({ length: 200 }, () => raw()));
    const startup = startupPacket(appParams);
    let i = 0;
    const drip = setInterval(() => {
      if (i < startup.length) for (const s of socks) s.send(startup.subarray(i, i + 1));
      i++;
    }, 200);
    try {
      await sleep(300);
      const t0 = performance.now();
      const c = await fx.client();
      await c.query('SELECT 1');
      assert.ok(performance.now() - t0 < 1000, 'a legitimate login is fast');
      await c.end();
      await Promise.all(socks.map((s) => s.expectClose(4000)));
    } finally {
      clearInterval(drip);
    }
    await clientsBackTo(base);
  });

  test('40: connections beyond max_client_conn → 53300 quickly', async () => {
    const p = await extraProxy({ max_client_conn: 3 });
    try {
      const held = await Promise.all(Array.from({ length: 3 }, () => RawClient.connect(p.port)));
      await sleep(50);
      const t0 = performance.now();
      const over = await RawClient.connect(p.port);
      await over.expectFatalThenClose('53300');
      assert.ok(performance.now() - t0 < 500);
      for (const h of held) h.destroy();
      for (let i = 0; i < 50 && p.proxy.clients.size > 0; i++) await sleep(20);
      const c = new pg.Client({ host: '127.0.0.1', port: p.port, ...appParams, password: fx.appPassword });
      await c.connect();
      await c.end();
    } finally {
      await p.proxy.stop();
    }
  });

  test('42: non-admins cannot KILL/SHUTDOWN/RELOAD/PAUSE; no password or secret in SHOW or logs', async () => {
    const stats = await raw();
    await stats.loginScram({ user: 'app', database: 'pgscale' }, fx.appPassword);
    for (const cmd of ['KILL app', 'SHUTDOWN', 'RELOAD', 'PAUSE', 'RESUME', 'SET x = 1']) {
      stats.send(fe({ name: 'Query', query: cmd }));
      const reply = await stats.until('Z');
      assert.ok(
        reply.some((m) => sqlstateOf(m) === '42501'),
        `${cmd}: ${reply.map((m) => messageOf(m) ?? m.type).join()}`,
      );
    }
    stats.destroy();
    const p = await extraProxy({ stats_users: [] });
    try {
      const c = await RawClient.connect(p.port);
      await c.scramUpToFinal({ user: 'app', database: 'pgscale' }, fx.appPassword);
      await c.nextAuth();
      await c.expectFatalThenClose('42501');
    } finally {
      await p.proxy.stop();
    }
    const admin = new pg.Client({
      host: '127.0.0.1',
      port: fx.port,
      user: 'postgres',
      password: fx.superPassword,
      database: 'pgscale',
    });
    await admin.connect();
    let all = '';
    for (const what of ['POOLS', 'CLIENTS', 'SERVERS', 'STATS', 'CONFIG', 'DATABASES', 'USERS']) {
      all += JSON.stringify((await admin.query(`SHOW ${what}`)).rows);
    }
    await admin.end();
    await logBarrier();
    const log = readFileSync(logPath).subarray(logStart).toString('utf8');
    for (const [where, text] of [
      ['SHOW', all],
      ['server log', log],
    ] as const) {
      for (const secret of [fx.appPassword, fx.superPassword])
        assert.ok(!text.includes(secret), `password in ${where}`);
      assert.ok(!/SCRAM-SHA-256\$/.test(text), `SCRAM secret in ${where}`);
      assert.ok(!/md5[0-9a-f]{32}/.test(text), `md5 hash in ${where}`);
    }
  });

  test('43: SQL nested 100k parentheses → an error from the server, no stack-overflow crash', async () => {
    const c = await authed();
    const deep = `SELECT ${'('.repeat(100_000)}1${')'.repeat(100_000)}`;
    c.send(fe({ name: 'Query', query: deep }));
    await c.expectError(['54001', '42601'], { timeoutMs: 10_000 });
    await c.until('Z');
    c.send(fe({ name: 'Parse', statement: 'deep', query: deep, paramTypes: [] }, { name: 'Sync' }));
    await c.expectError(['54001', '42601'], { timeoutMs: 10_000 });
    await c.until('Z');
    c.send(fe({ name: 'Query', query: `SET search_path = ${'('.repeat(50_000)}` }));
    await c.expectError(['54001', '42601'], { timeoutMs: 10_000 });
    await c.until('Z');
    assert.deepEqual(RawClient.rows(await c.query('SELECT 43')), [['43']]);
    c.destroy();
  });

  test('44: LISTEN, SET ROLE, SET search_path, advisory lock on one client; every other backend is clean', async () => {
    const a = await fx.client();
    const notes: string[] = [];
    await a.query('LISTEN leak_chan');
    await a.query('SET ROLE other');
    await a.query("SET search_path = 'leaky'");
    await a.query('SELECT pg_advisory_lock(4444)');
    assert.equal((await a.query('SELECT current_user AS u')).rows[0].u, 'other');
    await a.end();
    await sleep(200);
    // Hold every other server connection at once (the canary holds one), so each is inspected.
    const bs = await Promise.all(Array.from({ length: 7 }, () => fx.client()));
    for (const b of bs) b.on('notification', (n) => notes.push(n.channel));
    await Promise.all(bs.map((b) => b.query('BEGIN')));
    for (const b of bs) {
      const r = await b.query<{ u: string; sp: string }>(
        "SELECT current_user AS u, current_setting('search_path') AS sp",
      );
      assert.deepEqual(r.rows[0], { u: 'app', sp: '"$user", public' });
    }
    const d = await fx.direct();
    const locks = await d.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 4444",
    );
    await d.end();
    assert.equal(locks.rows[0]!.n, 0, 'the session advisory lock was released');
    await Promise.all(bs.map((b) => b.query('COMMIT')));
    const n = await fx.client();
    await n.query("NOTIFY leak_chan, 'x'");
    await n.end();
    await sleep(100);
    for (const b of bs) await b.query('SELECT 1');
    assert.deepEqual(notes, [], 'no notification reaches another client');
    await Promise.all(bs.map((b) => b.end()));
  });

  // ------------------------------------------------------------------ O1 under repetition

  test('O1: 300 repetitions of six bad inputs → client count back to baseline, heap bounded', async () => {
    const base = fx.proxy.clients.size;
    const before = memory();
    const inputs: (() => Promise<void>)[] = [
      async () => {
        const c = await raw();
        c.send(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0]));
        await c.expectClose();
      },
      async () => {
        const c = await raw();
        c.send(startupPacket({ database: 'app' }));
        await c.expectFatalThenClose('28000');
      },
      async () => {
        const c = await raw();
        c.send(startupPacket(appParams, protocolVersion(2, 0)));
        await c.expectFatalThenClose('0A000');
      },
      async () => {
        const c = await raw();
        c.send(encodeCancelRequest({ processId: 1, secretKey: randomBytes(4) }));
        await c.expectClose();
      },
      async () => {
        const c = await raw();
        c.send(Buffer.concat([encodeSSLRequest(), encodeSSLRequest()]));
        await c.expectClose();
      },
      async () => {
        const c = await raw();
        c.send(Buffer.concat([startupPacket(appParams), typedHeader('Q', 0x7fffffff)]));
        await c.expectClose();
      },
    ];
    for (const input of inputs) {
      for (let round = 0; round < 15; round++) await Promise.all(Array.from({ length: 20 }, () => input()));
    }
    await clientsBackTo(base);
    const grew = (memory() - before) / MB;
    assert.ok(grew < (gc ? 16 : 50), `memory grew ${grew.toFixed(1)} MB over 1800 bad connections`);
  });
});

describe('proxy, hostile input with TLS required (rows 12, 13, 14, 15, 16)', () => {
  let fx: ProxyFixture;
  let dir: string;
  let tlsPort: number;
  let tlsProxy: ProxyServer | null = null;
  let haveOpenssl = false;

  before(async () => {
    dir = tempDir();
    const r = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
      ],
      { stdio: 'ignore' },
    );
    haveOpenssl = r.status === 0;
    if (!haveOpenssl) return;
    fx = await startProxyFixture();
    tlsPort = await findFreePortBlock(1);
    const cfg = proxyConfig(fx.serverPort, tlsPort, {
      client_login_timeout: 1,
      tls: { mode: 'require', cert_file: join(dir, 'cert.pem'), key_file: join(dir, 'key.pem') },
    });
    tlsProxy = new ProxyServer({
      config: cfg,
      resolve: databasesResolver(cfg),
      inlineUsers: new Map([['app', fx.appPassword]]),
    });
    await tlsProxy.start();
  });
  after(async () => {
    await tlsProxy?.stop();
    await fx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const appParams = { user: 'app', database: 'app' };
  const raw = () => RawClient.connect(tlsPort);

  test('15: plaintext startup when TLS is required → 28000 before any password prompt', async (t) => {
    if (!haveOpenssl) return t.skip('no openssl');
    const c = await raw();
    c.send(startupPacket(appParams));
    await c.expectFatalThenClose('28000', { allowBefore: '' });
    const g = new pg.Client({
      host: '127.0.0.1',
      port: tlsPort,
      ...appParams,
      password: fx.appPassword,
      ssl: false,
    });
    g.on('error', () => undefined);
    await assert.rejects(g.connect(), (e: Error & { code?: string }) => e.code === '28000');
  });

  test('14 with TLS: GSSENCRequest → N, then SSLRequest → S, handshake, SCRAM login and a query', async (t) => {
    if (!haveOpenssl) return t.skip('no openssl');
    const c = await raw();
    c.send(encodeGSSENCRequest());
    assert.equal(await c.readByte(), 'N');
    c.send(encodeSSLRequest());
    assert.equal(await c.readByte(), 'S');
    await c.startTls();
    await c.loginScram(appParams, fx.appPassword);
    assert.deepEqual(RawClient.rows(await c.query('SELECT 14')), [['14']]);
    c.destroy();
    const g = new pg.Client({
      host: '127.0.0.1',
      port: tlsPort,
      ...appParams,
      password: fx.appPassword,
      ssl: { rejectUnauthorized: false },
    });
    await g.connect();
    assert.equal((await g.query('SELECT 1 AS x')).rows[0].x, 1);
    await g.end();
  });

  test('12 with TLS: SSLRequest+Startup+Query in one write → close, no S, nothing executed', async (t) => {
    if (!haveOpenssl) return t.skip('no openssl');
    const c = await raw();
    c.send(
      Buffer.concat([encodeSSLRequest(), startupPacket(appParams), fe({ name: 'Query', query: 'SELECT 1' })]),
    );
    assert.equal(await c.readByte(), null, 'no S: the handshake never starts');
    await c.expectSilentClose();
  });

  test('13 with TLS: SSLRequest inside TLS, GSSENC after TLS → close', async (t) => {
    if (!haveOpenssl) return t.skip('no openssl');
    const c = await raw();
    c.send(encodeSSLRequest());
    assert.equal(await c.readByte(), 'S');
    await c.startTls();
    c.send(encodeSSLRequest());
    await c.expectSilentClose();
    const d = await raw();
    d.send(encodeSSLRequest());
    assert.equal(await d.readByte(), 'S');
    await d.startTls();
    d.send(encodeGSSENCRequest());
    await d.expectSilentClose();
  });

  test('16: direct TLS ClientHello refused; stalled handshake closed at the login timeout; junk after S closed', async (t) => {
    if (!haveOpenssl) return t.skip('no openssl');
    // Direct TLS (PG17 sslnegotiation=direct, ALPN postgresql or none): never a handshake.
    for (const ALPNProtocols of [undefined, ['postgresql']]) {
      const outcome = await new Promise<string>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: tlsPort, rejectUnauthorized: false, ALPNProtocols });
        const timer = setTimeout(() => resolve('hang'), 2000);
        s.on('secureConnect', () => resolve('handshake'));
        s.on('error', () => resolve('refused'));
        s.on('close', () => {
          clearTimeout(timer);
          resolve('refused');
        });
      });
      assert.equal(outcome, 'refused');
    }
    // A handshake that never starts: closed at the login timeout (1 s), not left open.
    const t0 = performance.now();
    const stall = await raw();
    stall.send(encodeSSLRequest());
    assert.equal(await stall.readByte(), 'S');
    await stall.expectClose(3500);
    assert.ok(performance.now() - t0 >= 900, 'closed by the login timeout');
    // Junk instead of a ClientHello.
    const junk = await raw();
    junk.send(encodeSSLRequest());
    assert.equal(await junk.readByte(), 'S');
    junk.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await junk.expectClose();
  });
});
