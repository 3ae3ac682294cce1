import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHttpAddress } from './proxy.js';

test('--http takes HOST:PORT, [v6]:PORT or a bare PORT (on 127.0.0.1)', () => {
  assert.deepEqual(parseHttpAddress('0.0.0.0:9127'), { host: '0.0.0.0', port: 9127 });
  assert.deepEqual(parseHttpAddress('9127'), { host: '127.0.0.1', port: 9127 });
  assert.deepEqual(parseHttpAddress('[::1]:9127'), { host: '::1', port: 9127 });
});

test('--http names what is wrong with a bad address', () => {
  for (const bad of ['', 'host', 'host:', ':0', 'h:65536', 'h:12x'])
    assert.throws(() => parseHttpAddress(bad), /--http: expected HOST:PORT or PORT/, bad);
});
