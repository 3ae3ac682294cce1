import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allNodes, parseConfig } from '../config/load.js';
import { INIT_DEFAULTS, renderConfig } from '../config/template.js';
import type { PgBinaries } from './binaries.js';
import {
  ARCHIVE_SCRIPT,
  primaryConninfo,
  renderHba,
  renderNodeConf,
  subscriptionConninfo,
  synchronousStandbyNames,
} from './conf.js';

const cfg = (sync: string) =>
  parseConfig(renderConfig(INIT_DEFAULTS).replace('synchronous: off', `synchronous: ${sync}`), '/x/p.yaml')
    .config;

test('synchronous_standby_names follows the mode', () => {
  assert.equal(synchronousStandbyNames(cfg('off'), ['a', 'b']), '');
  assert.equal(synchronousStandbyNames(cfg('on'), ['a', 'b']), 'ANY 1 ("a", "b")');
  assert.equal(synchronousStandbyNames(cfg('"quorum 2"'), ['a', 'b']), 'ANY 2 ("a", "b")');
  assert.equal(synchronousStandbyNames(cfg('on'), []), '');
});

test('every node gets max_prepared_transactions (64 by default, or postgres.max_prepared_transactions)', () => {
  const bins = { dir: '/nonexistent/bin', major: 16 } as PgBinaries;
  const render = (config: ReturnType<typeof cfg>) =>
    allNodes(config).map((node) =>
      renderNodeConf({ config, node, bins, archiveDir: '/a', archiveScript: '/s', peers: [], tls: null }),
    );
  for (const conf of render(cfg('off'))) assert.match(conf, /^max_prepared_transactions = 64$/m);
  const custom = parseConfig(
    renderConfig(INIT_DEFAULTS).replace(
      '  parameters: {}',
      '  parameters: {}\n  max_prepared_transactions: 200',
    ),
    '/x/p.yaml',
  ).config;
  const confs = render(custom);
  assert.ok(confs.length > 1);
  for (const conf of confs) assert.match(conf, /^max_prepared_transactions = 200$/m);
  assert.throws(() =>
    parseConfig(
      renderConfig(INIT_DEFAULTS).replace(
        '  parameters: {}',
        '  parameters: {}\n  max_prepared_transactions: 0',
      ),
      '/x/p.yaml',
    ),
  );
});

test('every node runs wal_level logical with room for a few subscriptions of shard moves', () => {
  const bins = { dir: '/nonexistent/bin', major: 16 } as PgBinaries;
  const config = cfg('off');
  for (const node of allNodes(config)) {
    const conf = renderNodeConf({
      config,
      node,
      bins,
      archiveDir: '/a',
      archiveScript: '/s',
      peers: [],
      tls: null,
    });
    const num = (k: string) => Number(new RegExp(`^${k} = (\\d+)$`, 'm').exec(conf)?.[1] ?? NaN);
    assert.match(conf, /^wal_level = 'logical'$/m);
    assert.ok(num('max_logical_replication_workers') >= 8);
    assert.ok(num('max_worker_processes') >= 16);
    assert.ok(num('max_sync_workers_per_subscription') >= 2);
    // Every standby a slot and a sender, and a handful left for subscriptions.
    const standbys = config.groups[node.group]!.nodes.length - 1;
    assert.ok(num('max_replication_slots') >= standbys + 8);
    assert.ok(num('max_wal_senders') >= standbys + 8);
  }
});

test('pg_hba.conf allows SCRAM only, and replication only for the replicator role', () => {
  const hba = renderHba(cfg('off'));
  const rules = hba.split('\n').filter((l) => l && !l.startsWith('#'));
  assert.ok(rules.every((l) => l.endsWith('scram-sha-256')));
  assert.ok(rules.filter((l) => l.includes('replication')).every((l) => /replication\s+replicator/.test(l)));
  assert.doesNotMatch(hba, /trust|md5|0\.0\.0\.0\/0/);
});

test('primary_conninfo names a passfile, never a password', () => {
  const c = primaryConninfo({ host: 'localhost', port: 5432 }, 's0n1', '/d/secrets/pgpass');
  assert.match(c, /passfile=\/d\/secrets\/pgpass/);
  assert.match(c, /application_name=s0n1/);
  assert.doesNotMatch(c, /password=/);
  assert.match(primaryConninfo({ host: 'h', port: 1 }, 'n', "/odd dir/it's"), /passfile='\/odd dir\/it\\'s'/);
});

test('the archive script never overwrites a different file and leaves no temporary file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgscale-arch-'));
  try {
    const script = join(dir, 'archive.sh');
    writeFileSync(script, ARCHIVE_SCRIPT, { mode: 0o755 });
    const arch = join(dir, 'archive');
    execFileSync('mkdir', [arch]);
    const seg = join(dir, 'seg');
    writeFileSync(seg, 'wal-content-1');
    const run = () => spawnSync(script, [seg, '000000010000000000000001', arch], { encoding: 'utf8' });
    assert.equal(run().status, 0);
    assert.equal(readFileSync(join(arch, '000000010000000000000001'), 'utf8'), 'wal-content-1');
    assert.equal(run().status, 0, 'same content again is success');
    writeFileSync(seg, 'different');
    const r = run();
    assert.equal(r.status, 1);
    assert.match(r.stderr, /refusing to overwrite/);
    assert.equal(readFileSync(join(arch, '000000010000000000000001'), 'utf8'), 'wal-content-1');
    const missing = spawnSync(script, [join(dir, 'nope'), 'x', arch], { encoding: 'utf8' });
    assert.notEqual(missing.status, 0);
    assert.deepEqual(readdirSync(arch), ['000000010000000000000001']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('subscriptionConninfo', () => {
  test('quotes a value as libpq reads it when it must, and carries no password', () => {
    const s = subscriptionConninfo({ host: 'db.example', port: 5433 }, "a'b\\c", 'postgres', '/x y/pgpass');
    assert.equal(
      s,
      "host=db.example port=5433 dbname='a\\'b\\\\c' user=postgres passfile='/x y/pgpass' application_name=pgscale_move",
    );
    assert.doesNotMatch(s, /password/);
  });
  test("without a passfile it names none: the server's PGPASSFILE is read", () => {
    const s = subscriptionConninfo({ host: 'h', port: 1 }, 'app', 'postgres', null);
    assert.equal(s, 'host=h port=1 dbname=app user=postgres application_name=pgscale_move');
    // With the cluster CA: verified, against the CA the server's environment names.
    const t = subscriptionConninfo({ host: 'h', port: 1 }, 'app', 'postgres', null, '/d/tls/ca.crt');
    assert.equal(
      t,
      'host=h port=1 dbname=app user=postgres application_name=pgscale_move sslmode=verify-full',
    );
  });
});
