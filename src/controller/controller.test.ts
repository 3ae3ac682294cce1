/**
 * The controller's contract with its services, without PostgreSQL (a stand-in cluster): start
 * order cluster → supervisor → services → HTTP API, stop in reverse then cluster.down(); a
 * failing service undoes the start; controller.json is the lock and is removed on stop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Cluster } from '../cluster/cluster.js';
import { findFreePortBlock } from '../cluster/ports.js';
import { parseConfig } from '../config/load.js';
import { createLogger } from '../obs/logger.js';
import { Controller } from './controller.js';
import { claimControllerFile, readControllerFile } from './controller-file.js';
import type { Service } from './service.js';

async function setup(calls: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'pgscale-controller-'));
  const port = await findFreePortBlock(1);
  const loaded = parseConfig(
    `http: { listen: 127.0.0.1, port: ${port} }\ngroups: [{ nodes: [{ name: s0n0, port: ${port + 2} }] }]\n`,
    join(dir, 'pgscale.yaml'),
  );
  const cluster = {
    loaded,
    config: loaded.config,
    dataDir: loaded.dataDir,
    identity: () => ({ id: 'x', name: 'pgscale', created_at: '' }),
    nodes: () => [],
    onPlannedStop: () => () => undefined,
    up: () => (calls.push('cluster.up'), Promise.resolve()),
    down: () => (calls.push('cluster.down'), Promise.resolve([])),
    status: () => Promise.resolve([]),
    bins: { version: '18', dir: '/x', source: 'embedded' },
  } as unknown as Cluster;
  const quiet = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  const { mkdirSync } = await import('node:fs');
  mkdirSync(loaded.dataDir, { recursive: true });
  return { dir, port, loaded, controller: new Controller(loaded, cluster, quiet) };
}

function service(name: string, calls: string[], failStart = false): Service {
  return {
    name,
    start: () => {
      calls.push(`${name}.start`);
      return failStart ? Promise.reject(new Error(`${name} cannot listen`)) : Promise.resolve();
    },
    stop: () => (calls.push(`${name}.stop`), Promise.resolve()),
    status: () => ({ name, password: 'hunter2' }),
  };
}

test('services start after the cluster and stop in reverse order before it', async () => {
  const calls: string[] = [];
  const { dir, port, loaded, controller } = await setup(calls);
  try {
    controller.addService(service('a', calls));
    controller.addService(service('b', calls));
    assert.throws(() => controller.addService(service('a', calls)), /two services are named a/);
    await controller.start();
    assert.equal(controller.state, 'running');
    assert.equal(readControllerFile(loaded.dataDir)?.pid, process.pid);
    const res = await fetch(`http://127.0.0.1:${port}/services`);
    const body = await res.text();
    assert.ok(!body.includes('hunter2'), 'a service status is redacted');
    assert.deepEqual(
      (JSON.parse(body) as { services: { name: string; state: string }[] }).services.map((s) => [
        s.name,
        s.state,
      ]),
      [
        ['supervisor', 'running'],
        ['a', 'running'],
        ['b', 'running'],
      ],
    );
    assert.throws(() => controller.addService(service('c', calls)), /after the controller started/);
    await controller.stop();
    assert.deepEqual(calls, ['cluster.up', 'a.start', 'b.start', 'b.stop', 'a.stop', 'cluster.down']);
    assert.equal(controller.state, 'stopped');
    assert.equal(existsSync(join(loaded.dataDir, 'controller.json')), false);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a service that fails to start undoes the start, the nodes included', async () => {
  const calls: string[] = [];
  const { dir, loaded, controller } = await setup(calls);
  try {
    controller.addService(service('a', calls));
    controller.addService(service('b', calls, true));
    await assert.rejects(controller.start(), /service b did not start: b cannot listen/);
    assert.deepEqual(calls, ['cluster.up', 'a.start', 'b.start', 'b.stop', 'a.stop', 'cluster.down']);
    assert.equal(controller.state, 'failed');
    assert.equal(existsSync(join(loaded.dataDir, 'controller.json')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('another live controller in controller.json is refused, naming its pid', async () => {
  const calls: string[] = [];
  const { dir, port, loaded, controller } = await setup(calls);
  try {
    // This test process stands in for the other controller (its command line mentions node).
    const other = { pid: process.ppid, http: { host: '127.0.0.1', port }, started_at: 'then' };
    claimControllerFile(loaded.dataDir, other);
    await assert.rejects(controller.start(), new RegExp(`another controller \\(pid ${process.ppid}\\)`));
    assert.deepEqual(calls, [], 'nothing started');
    assert.equal(readControllerFile(loaded.dataDir)?.pid, process.ppid, 'its file is left alone');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
