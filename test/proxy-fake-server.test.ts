/**
 * A hostile or broken server behind the proxy (cases.md §4a row 41): a scriptable fake
 * PostgreSQL server on a free port answers the proxy's login, or a query, with what a real one
 * never sends. Each case must drop that server connection and give the client a clear error,
 * never crash the proxy or hang; a client of the admin console, which needs no server, checks
 * after every case that the proxy still serves.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import pg from 'pg';
import { parseConfig } from '../src/config/load.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { databasesResolver } from '../src/proxy/resolver.js';
import { findFreePortBlock } from '../src/cluster/ports.js';

/** One backend message: type byte, int32 length, payload. */
function msg(type: string, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(payload.length + 4, 1);
  return Buffer.concat([head, payload]);
}
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cstr = (s: string) => Buffer.from(`${s}\0`, 'utf8');
const authOk = () => msg('R', int32(0));
const ready = () => msg('Z', Buffer.from('I'));
const loggedIn = () =>
  Buffer.concat([
    authOk(),
    msg('S', Buffer.concat([cstr('server_version'), cstr('15.0')])),
    msg('S', Buffer.concat([cstr('client_encoding'), cstr('UTF8')])),
    msg('K', Buffer.concat([int32(4242), int32(1)])),
    ready(),
  ]);

/**
 * What the fake server does: it gets the socket after the proxy's first packet (an SSLRequest or
 * a StartupMessage, given whole) and every later chunk through `onData`.
 */
type Script = (sock: Socket, first: Buffer, onData: (fn: (chunk: Buffer) => void) => void) => void;

interface Fake {
  port: number;
  server: Server;
}

async function fakeServer(script: Script): Promise<Fake> {
  const [port] = [await findFreePortBlock(1)];
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let later: ((chunk: Buffer) => void) | null = null;
    let started = false;
    sock.on('data', (chunk: Buffer) => {
      if (started) return later?.(chunk);
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4 || buf.length < buf.readInt32BE(0)) return;
      started = true;
      const first = buf.subarray(0, buf.readInt32BE(0));
      const rest = buf.subarray(first.length);
      script(sock, first, (fn) => {
        later = fn;
        if (rest.length) fn(rest);
      });
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { port: port, server };
}

const SSL_REQUEST_CODE = 80877103;

const CASES: Record<string, Script> = {
  // An ErrorResponse with a severity and a message but no SQLSTATE (C) field.
  error_without_code: (sock) => {
    sock.end(
      msg(
        'E',
        Buffer.concat([Buffer.from('S'), cstr('FATAL'), Buffer.from('M'), cstr('no code'), Buffer.alloc(1)]),
      ),
    );
  },
  // SCRAM with a 100 kB server nonce (extending the client's, as the protocol requires).
  huge_scram_nonce: (sock, _first, onData) => {
    sock.write(msg('R', Buffer.concat([int32(10), cstr('SCRAM-SHA-256'), Buffer.alloc(1)])));
    onData((chunk) => {
      const text = chunk.toString('latin1');
      const m = /r=([^,]+)/.exec(text);
      if (!m) return;
      const serverFirst = `r=${m[1]}${'x'.repeat(100_000)},s=${Buffer.from('salt').toString('base64')},i=4096`;
      sock.write(msg('R', Buffer.concat([int32(11), Buffer.from(serverFirst)])));
    });
  },
  // NegotiateProtocolVersion although the proxy asked for 3.0 without options.
  bogus_negotiate: (sock) => {
    sock.write(msg('v', Buffer.concat([int32((3 << 16) | 99), int32(1), cstr('_pq_.bogus')])));
    sock.write(loggedIn());
  },
  // A DataRow whose declared length is far beyond any limit, in answer to the first query.
  huge_data_row: (sock, _first, onData) => {
    sock.write(loggedIn());
    onData((chunk) => {
      if (chunk[0] !== 0x51 /* Q */) return;
      const head = Buffer.alloc(5);
      head.write('D', 0, 'latin1');
      head.writeInt32BE(0x7ffffff0, 1);
      sock.write(Buffer.concat([head, Buffer.alloc(1024)]));
    });
  },
};

// 'S' followed by bytes before the TLS handshake (CVE-2021-23222): the proxy must not read them.
const sslThenJunk: Script = (sock, first) => {
  if (first.length === 8 && first.readInt32BE(4) === SSL_REQUEST_CODE) sock.write(Buffer.from('Sjunk'));
  else sock.destroy();
};

describe('a hostile server behind the proxy (cases.md row 41)', () => {
  const fakes: Fake[] = [];
  const proxies: ProxyServer[] = [];
  let port = 0;
  let tlsPort = 0;

  const startProxy = async (databases: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
    const [p] = [await findFreePortBlock(1)];
    const cfg = parseConfig(
      JSON.stringify({
        proxy: {
          listen: '127.0.0.1',
          port: p,
          auth_type: 'trust',
          admin_users: ['admin'],
          server_connect_timeout: 3,
          query_wait_timeout: 5,
          databases,
          ...extra,
        },
      }),
      '/fake-server.yaml',
    ).config.proxy;
    const proxy = new ProxyServer({ config: cfg, resolve: databasesResolver(cfg), inlineUsers: new Map() });
    await proxy.start();
    proxies.push(proxy);
    return p;
  };

  before(async () => {
    const databases: Record<string, unknown> = {};
    for (const [name, script] of Object.entries(CASES)) {
      const f = await fakeServer(script);
      fakes.push(f);
      databases[name] = { host: '127.0.0.1', port: f.port, user: 'app', password: 'secret' };
    }
    port = await startProxy(databases);
    const tls = await fakeServer(sslThenJunk);
    fakes.push(tls);
    tlsPort = await startProxy(
      { ssl_then_junk: { host: '127.0.0.1', port: tls.port, user: 'app', password: 'secret' } },
      { server_tls: { mode: 'prefer' } },
    );
  });

  after(async () => {
    for (const p of proxies) await p.stop();
    for (const f of fakes) await new Promise((r) => f.server.close(r));
  });

  /** Runs a query through the proxy; returns the error it ends with (it must end with one). */
  const failure = async (
    p: number,
    database: string,
  ): Promise<{ code: string | undefined; message: string }> => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: p,
      user: 'app',
      database,
      connectionTimeoutMillis: 10_000,
      query_timeout: 6000,
    });
    c.on('error', () => undefined);
    const t0 = Date.now();
    try {
      await c.connect();
      await c.query('SELECT 1');
      assert.fail(`${database}: the query succeeded`);
    } catch (e) {
      const err = e as { code?: string; message: string };
      assert.ok(Date.now() - t0 < 8000, `${database}: the error took ${Date.now() - t0} ms`);
      return { code: err.code, message: err.message };
    } finally {
      await c.end().catch(() => undefined);
    }
  };

  const stillServes = async (p: number) => {
    const admin = new pg.Client({ host: '127.0.0.1', port: p, user: 'admin', database: 'pgscale' });
    await admin.connect();
    const r = await admin.query('SHOW POOLS');
    assert.ok(Array.isArray(r.rows));
    await admin.end();
  };

  test('an ErrorResponse without a SQLSTATE at login: a well-formed error of ours, 08P01', async () => {
    const e = await failure(port, 'error_without_code');
    assert.equal(e.code, '08P01');
    assert.match(e.message, /malformed ErrorResponse/);
    await stillServes(port);
  });

  test('a 100 kB SCRAM nonce: the login is dropped as a protocol violation', async () => {
    const e = await failure(port, 'huge_scram_nonce');
    assert.equal(e.code, '08P01');
    await stillServes(port);
  });

  test('a NegotiateProtocolVersion nobody asked for: the server is dropped', async () => {
    const e = await failure(port, 'bogus_negotiate');
    assert.equal(e.code, '08P01');
    assert.match(e.message, /NegotiateProtocolVersion/);
    await stillServes(port);
  });

  test("'S' and junk before the TLS handshake: refused before a byte is read as TLS", async () => {
    const e = await failure(tlsPort, 'ssl_then_junk');
    assert.equal(e.code, '08P01');
    assert.match(e.message, /SSLRequest/);
    await stillServes(tlsPort);
  });

  test('a DataRow of 2 GB declared: the server connection is dropped, the client told, nothing buffered', async () => {
    const before = process.memoryUsage().rss;
    const e = await failure(port, 'huge_data_row');
    assert.ok(e.code === '57P01' || e.code === '08006' || e.code === '08P01', `code ${e.code}: ${e.message}`);
    assert.ok(process.memoryUsage().rss - before < 256 * 1024 * 1024, 'the proxy buffered the declared row');
    await stillServes(port);
  });

  test('each case again, 20 times over: the proxy keeps serving', async () => {
    for (let i = 0; i < 20; i++) {
      for (const db of Object.keys(CASES)) await failure(port, db);
    }
    await stillServes(port);
  });
});
