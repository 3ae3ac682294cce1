import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWorkers } from './proxy-worker-messages.js';
import { proxyConfigFor } from './proxy-service.js';
import { parseConfig } from '../config/load.js';

test('--workers and proxy.workers: 1 to 64, or auto for the CPUs; anything else is named', () => {
  assert.equal(parseWorkers('2', 8), 2);
  assert.equal(parseWorkers(3, 8), 3);
  assert.equal(parseWorkers('auto', 8), 8);
  for (const bad of ['0', '65', '-1', '1.5', 'two', ''])
    assert.throws(() => parseWorkers(bad, 8), /--workers: expected a number from 1 to 64 or auto/, bad);
});

test('pgscale up refuses proxy.workers above 1, saying it is for pgscale proxy for now', () => {
  const loaded = (workers: string) =>
    parseConfig(
      `proxy:\n  workers: ${workers}\ngroups:\n  - nodes:\n      - { name: a, port: 5432 }\n`,
      '/x/pgscale.yaml',
    );
  assert.throws(
    () => proxyConfigFor(loaded('2')),
    /proxy\.workers: 2 is for the standalone `pgscale proxy` for now/,
  );
  assert.throws(() => proxyConfigFor(loaded('auto')), /set proxy\.workers to 1/);
  assert.equal(proxyConfigFor(loaded('1')).workers, 1);
  assert.throws(() => parseConfig('proxy:\n  workers: 0\n', '/x/pgscale.yaml'), /proxy\.workers/);
});
