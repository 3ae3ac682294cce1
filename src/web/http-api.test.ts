import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Writable } from 'node:stream';
import type { Cluster } from '../cluster/cluster.js';
import { createLogger } from '../obs/logger.js';
import { createRegistry } from '../obs/metrics.js';
import { HttpApi } from './http-api.js';

// Only the parts that need no cluster: the token check and the request plumbing of POST routes.
const TOKEN = 'abcdefghijklmnopqrstuvwxyz012345';
let logged = '';
let calls = 0;
const api = new HttpApi({
  host: '127.0.0.1',
  port: 0,
  cluster: {} as Cluster,
  registry: createRegistry(),
  logger: createLogger({
    destination: new Writable({
      write(chunk: Buffer, _enc, cb) {
        logged += chunk.toString('utf8');
        cb();
      },
    }),
  }),
  state: () => 'running',
  controller: () => null,
  services: () => [],
  actions: () => {
    calls++;
    return Promise.resolve({ status: 200, body: { ok: true } });
  },
  token: () => TOKEN,
});
let port = 0;

before(async () => {
  port = (await api.start()).port;
});
after(() => api.stop());

/** A request with any Authorization header (node:http sends it as UTF-8; fetch refuses non-Latin-1). */
function post(authorization: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/ha/pause', headers: { authorization } },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end('{}');
  });
}

test('a non-ASCII bearer token of the right length is refused with 401, nothing logged as a failure', async () => {
  // The server reads header bytes as Latin-1: 16 two-byte UTF-8 characters arrive as 32 characters,
  // the token's length, whose UTF-8 encoding is 64 bytes.
  for (const t of ['é'.repeat(TOKEN.length / 2), `${TOKEN.slice(0, -2)}ÿ`, 'ü' + TOKEN.slice(2)]) {
    const r = await post(`Bearer ${t}`);
    assert.equal(r.status, 401, r.body);
  }
  assert.equal(calls, 0);
  assert.doesNotMatch(logged, /HTTP request failed|RangeError/);
});

test('the right token passes; a wrong, a shorter or a longer one does not', async () => {
  assert.equal((await post(`Bearer ${TOKEN}`)).status, 200);
  assert.equal(calls, 1);
  for (const t of ['x'.repeat(TOKEN.length), TOKEN.slice(1), `${TOKEN}x`, '']) {
    assert.equal((await post(`Bearer ${t}`)).status, 401);
  }
  assert.equal(calls, 1);
});
