/**
 * Bad input to the CLI: each mistake stops with a message naming the problem, and changes
 * nothing (no data directory created, nothing started, foreign files untouched).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binarySets, cli, makeCluster, tempDir } from './harness.js';
import type { TestCluster } from './harness.js';
import { loadConfig } from '../src/config/load.js';

const bins = binarySets()[0]!;
const env = { PGSCALE_PG_BIN: bins.dir };

describe('CLI usage errors', () => {
  test('unknown command, unknown option and bad numbers exit 2 with a message', async () => {
    const a = await cli(['frobnicate']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /unknown command "frobnicate"/);
    const b = await cli(['status', '--bogus']);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /Unknown option '--bogus'.*pgscale status --help/);
    const dir = tempDir();
    try {
      const c = await cli(['init', '--dir', dir, '--groups', 'two']);
      assert.equal(c.code, 2);
      assert.match(c.stderr, /--groups must be a whole number from 1 to 64, got "two"/);
      assert.deepEqual(readdirSync(dir), []);
      const d = await cli(['destroy', '-c', join(dir, 'pgscale.yaml')]);
      assert.equal(d.code, 2);
      assert.match(d.stderr, /confirm with --yes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('every command has --help', async () => {
    for (const cmd of [
      'init',
      'up',
      'down',
      'destroy',
      'status',
      'add-replica',
      'remove-replica',
      'psql',
      'url',
      'doctor',
      'rotate-certs',
      'service',
    ]) {
      const r = await cli([cmd, '--help']);
      assert.equal(r.code, 0, cmd);
      assert.match(r.stdout, new RegExp(`Usage: pgscale ${cmd}`));
    }
    const top = await cli(['--help']);
    assert.match(top.stdout, /Commands:/);
  });

  test('a missing config file is named', async () => {
    const r = await cli(['up', '-c', '/nonexistent/pgscale.yaml']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\/nonexistent\/pgscale\.yaml: no such file\. Create one with `pgscale init`/);
  });

  test('init refuses to overwrite an existing file', async () => {
    const dir = tempDir();
    try {
      assert.equal((await cli(['init', '--dir', dir])).code, 0);
      const before = readFileSync(join(dir, 'pgscale.yaml'), 'utf8');
      const r = await cli(['init', '--dir', dir, '--groups', '3']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /already exists; use --force/);
      assert.equal(readFileSync(join(dir, 'pgscale.yaml'), 'utf8'), before);
      assert.equal(loadConfig(join(dir, 'pgscale.yaml')).config.groups.length, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('up refuses bad situations and changes nothing', () => {
  let tc: TestCluster;
  before(async () => {
    tc = await makeCluster(bins, { replicas: 1 });
  });
  after(async () => {
    await tc.cleanup();
  });

  test('an invalid config stops before anything is created', async () => {
    const file = join(tc.dir, 'bad.yaml');
    writeFileSync(file, readFileSync(tc.file, 'utf8').replace('synchronous: off', 'synchronous: sometimes'));
    const r = await cli(['up', '-c', file, '--detach'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /replication\.synchronous: accepted values: off, on, "quorum N"/);
    assert.equal(existsSync(tc.cluster.dataDir), false);
  });

  test('a port in use is named, and nothing starts', async () => {
    const port = tc.cluster.nodes()[1]!.port;
    const srv: Server = createServer();
    await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
    try {
      const r = await cli(['up', '-c', tc.file, '--detach'], env);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`port ${port} of node s0n1 \\(localhost\\) is already in use`));
      assert.equal(existsSync(tc.cluster.dataDir), false);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  test('missing binaries are named, with what to do', async () => {
    const r = await cli(['up', '-c', tc.file, '--detach'], { PGSCALE_PG_BIN: '/nonexistent/bin' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /PGSCALE_PG_BIN \(\/nonexistent\/bin\) are unusable: initdb not found/);
    assert.equal(existsSync(tc.cluster.dataDir), false);
  });

  test("a node directory that holds another cluster's data is left alone", async () => {
    const pgdata = tc.cluster.paths('s0n0').pgdata;
    mkdirSync(pgdata, { recursive: true });
    writeFileSync(join(pgdata, 'PG_VERSION'), '15\n');
    writeFileSync(join(pgdata, 'precious'), 'do not touch');
    try {
      const r = await cli(['up', '-c', tc.file, '--detach'], env);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /data directory .*s0n0 of node s0n0 belongs to something else \(no pgscale marker\)/,
      );
      assert.equal(readFileSync(join(pgdata, 'precious'), 'utf8'), 'do not touch');
      assert.deepEqual(readdirSync(tc.cluster.dataDir), ['nodes']);
    } finally {
      rmSync(tc.cluster.dataDir, { recursive: true, force: true });
    }
  });

  test('a data_dir full of unrelated files is refused', async () => {
    mkdirSync(tc.cluster.dataDir, { recursive: true });
    writeFileSync(join(tc.cluster.dataDir, 'thesis.tex'), 'x');
    try {
      const r = await cli(['up', '-c', tc.file, '--detach'], env);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /is not empty and is not a pgscale cluster's \(found: thesis\.tex\)/);
      assert.deepEqual(readdirSync(tc.cluster.dataDir), ['thesis.tex']);
      const d = await cli(['destroy', '--yes', '-c', tc.file], env);
      assert.equal(d.code, 1);
      assert.match(d.stderr, /not a pgscale cluster's data directory/);
      assert.ok(existsSync(join(tc.cluster.dataDir, 'thesis.tex')));
    } finally {
      rmSync(tc.cluster.dataDir, { recursive: true, force: true });
    }
  });

  test('a node directory of another pgscale cluster is refused', async () => {
    const other = await makeCluster(bins, { replicas: 0 });
    try {
      await other.cluster.up();
      await other.cluster.down();
      // Point this cluster's s0n0 at the other cluster's node directory.
      const r0 = tc.cluster.paths('s0n0').pgdata;
      mkdirSync(join(tc.cluster.dataDir, 'nodes'), { recursive: true });
      (await import('node:fs')).cpSync(other.cluster.paths('s0n0').pgdata, r0, { recursive: true });
      writeFileSync(
        join(tc.cluster.dataDir, 'cluster.json'),
        JSON.stringify({ id: 'mine', name: 'pgscale', created_at: '' }),
      );
      const r = await cli(['up', '-c', tc.file, '--detach'], env);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /belongs to another cluster or node \(pgscale\/s0n0\)/);
    } finally {
      await other.cleanup();
      rmSync(tc.cluster.dataDir, { recursive: true, force: true });
    }
  });
});
