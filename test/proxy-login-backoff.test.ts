/**
 * Failed logins through the proxy (issue #11, item 10): each one is logged as one pino line with
 * user, database, client address and reason (never the password), password checks from an
 * address that keeps failing are spaced by a growing delay, and other addresses are not slowed.
 * Timing asserts here are lower bounds (a delay that must have happened) or orderings, never
 * upper bounds on a loaded machine.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import pg from 'pg';
import { startProxyFixture, proxyConfig } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { databasesResolver } from '../src/proxy/resolver.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { createLogger } from '../src/obs/logger.js';
import { createRegistry } from '../src/obs/metrics.js';
import { registerProxyMetrics } from '../src/cli/proxy-metrics.js';

const WRONG = 'not-the-password-0xC0FFEE';

/** A pg socket whose connections come from `localAddress` (127.0.0.0/8 is all loopback). */
function socketFrom(localAddress: string): () => Socket {
  return () => {
    const s = new Socket();
    const connect = s.connect.bind(s) as (o: object) => Socket;
    (s as unknown as { connect: (port: number, host: string) => Socket }).connect = (port, host) =>
      connect({ port, host, localAddress });
    return s;
  };
}

describe('failed logins: logged and slowed per client address', () => {
  let fx: ProxyFixture;
  let proxy: ProxyServer;
  let port: number;
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const settings = { threshold: 2, baseMs: 1000, capMs: 4000, maxWaiting: 2 };

  const login = async (password: string, from = '127.0.0.1', user = 'app') => {
    const t0 = performance.now();
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user,
      password,
      database: 'app',
      stream: socketFrom(from),
    });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.end();
      return { ok: true as const, ms: performance.now() - t0 };
    } catch (e) {
      return { ok: false as const, ms: performance.now() - t0, code: (e as { code?: string }).code };
    }
  };

  before(async () => {
    fx = await startProxyFixture();
    port = await findFreePortBlock(1);
    const cfg = proxyConfig(fx.serverPort, port);
    const logger = createLogger({
      destination: {
        write(s: string) {
          raw.push(s);
          lines.push(JSON.parse(s) as Record<string, unknown>);
        },
      },
    });
    proxy = new ProxyServer({
      config: cfg,
      resolve: databasesResolver(cfg),
      inlineUsers: new Map([['app', fx.appPassword]]),
      logger,
      loginBackoff: settings,
    });
    await proxy.start();
  });
  after(async () => {
    await proxy?.stop();
    await fx?.close();
  });

  test('each wrong password is one log line; the Kth check waits at least its delay', async () => {
    const results = [];
    for (let k = 0; k < 4; k++) {
      const r = await login(WRONG);
      assert.equal(r.ok, false);
      assert.equal(r.code, '28P01');
      results.push(r);
    }
    // Failures before attempt k: k; delays 0, 0, 1000, 2000 ms.
    for (let k = 0; k < 4; k++) {
      const d = proxy.loginBackoff!.delayFor(k);
      assert.ok(results[k]!.ms >= d - 5, `attempt ${k + 1} took ${results[k]!.ms} ms, expected >= ${d}`);
    }
    const failed = lines.filter((l) => l.event === 'login_failed');
    assert.equal(failed.length, 4);
    for (const l of failed) {
      assert.equal(l.user, 'app');
      assert.equal(l.database, 'app');
      assert.equal(l.client, '127.0.0.1');
      assert.equal(l.reason, 'wrong password');
      assert.equal(l.level, 40);
    }
    assert.deepEqual(
      failed.map((l) => l.failures),
      [1, 2, 3, 4],
    );
    assert.ok(!raw.join('').includes(WRONG), 'the password never reaches the log');
    assert.ok(!/p=[A-Za-z0-9+/]{20}/.test(raw.join('')), 'nor a SCRAM proof');
  });

  test('meanwhile another address logs in at once; an unknown user fails the same way', async () => {
    // 4 failures: the next check from 127.0.0.1 waits 4 s.
    let attackerDone = false;
    const attacker = login(WRONG).then((r) => {
      attackerDone = true;
      return r;
    });
    const good = await login(fx.appPassword, '127.0.0.2');
    assert.equal(good.ok, true);
    assert.equal(attackerDone, false, 'the other address was answered while 127.0.0.1 waits its turn');
    const unknown = await login(WRONG, '127.0.0.3', 'nobody');
    assert.equal(unknown.code, '28P01');
    assert.equal(lines.at(-1)?.reason, 'unknown user');
    const a = await attacker;
    assert.equal(a.code, '28P01');
    assert.ok(a.ms >= 4000 - 5, `took ${a.ms} ms`);
  });

  test('parallel guesses from one address beyond the waiting places are refused with 53300', async () => {
    const all = await Promise.all([1, 2, 3, 4].map(() => login(WRONG)));
    const codes = all.map((r) => r.code).sort();
    assert.ok(codes.includes('53300'), codes.join(','));
    assert.ok(codes.includes('28P01'), codes.join(','));
    // The refusals are not logged one by one: the next failure's line counts them.
    const last = lines.filter((l) => l.event === 'login_failed').slice(-2);
    assert.ok(
      last.some((l) => Number(l.throttled) >= 1),
      JSON.stringify(last),
    );
  });

  test('the failures are counted in pgscale_proxy_login_failures_total', async () => {
    const registry = createRegistry();
    registerProxyMetrics(registry, () => proxy);
    const text = await registry.metrics();
    const m = /pgscale_proxy_login_failures_total\{kind="authentication"\} (\d+)/.exec(text);
    assert.ok(
      m && Number(m[1]) >= 6,
      text
        .split('\n')
        .filter((l) => l.includes('login_fail'))
        .join('\n'),
    );
    assert.match(text, /# TYPE pgscale_proxy_login_failures_total counter/);
    assert.match(text, /pgscale_proxy_login_failures_total\{kind="throttled"\} [1-9]/);
  });

  test('a correct login from the address resets its back-off', async () => {
    const ok = await login(fx.appPassword);
    assert.equal(ok.ok, true);
    assert.equal(proxy.loginBackoff!.turn('127.0.0.1', Date.now()), 0);
  });
});
