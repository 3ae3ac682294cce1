import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { renderNodeConf } from './conf.js';
import type { PgBinaries } from './binaries.js';
import { pgbackrestCommands, renderPgbackrestConf, supportsMajor } from './pgbackrest.js';

const yaml = (backup: string) => `
cluster: { name: shop, data_dir: /srv/pgscale }
backup:
${backup}
groups:
  - nodes: [{ name: a0, port: 5433 }, { name: a1, port: 5434 }]
  - nodes: [{ name: b0, port: 5435 }]
`;

test('pgbackrest.conf: the repository and retention, a stanza per group with every node as pg1..pgN', () => {
  const conf = renderPgbackrestConf(
    parseConfig(yaml('  enabled: true\n  retention_full: 3\n  process_max: 2'), '/etc/pgscale/pgscale.yaml'),
  );
  assert.match(conf, /^repo1-path=\/srv\/pgscale\/backup$/m);
  assert.match(conf, /^repo1-retention-full=3$/m);
  assert.match(conf, /^process-max=2$/m);
  assert.match(conf, /^lock-path=\/srv\/pgscale\/pgbackrest\/lock$/m);
  assert.match(
    conf,
    /\[shop-g0\]\npg1-path=\/srv\/pgscale\/nodes\/a0\npg1-port=5433\npg1-user=postgres\npg2-path=\/srv\/pgscale\/nodes\/a1\npg2-port=5434/,
  );
  assert.match(conf, /\[shop-g1\]\npg1-path=\/srv\/pgscale\/nodes\/b0\n/);
  assert.doesNotMatch(conf, /s3/);
});

test('an s3 repository without its keys is refused, naming what is missing', () => {
  const loaded = parseConfig(
    yaml('  enabled: true\n  repo_type: s3\n  s3: { bucket: b, region: r }'),
    '/etc/pgscale/pgscale.yaml',
  );
  assert.throws(
    () => renderPgbackrestConf(loaded),
    (e: unknown) =>
      e instanceof Error &&
      /backup\.s3\.endpoint, backup\.s3\.key_file, backup\.s3\.secret_key_file/.test(e.message),
  );
});

test('a bad schedule is a config error naming the key and the accepted forms', () => {
  assert.throws(
    () => parseConfig(yaml('  schedule: { diff: "every day" }'), '/x/pgscale.yaml'),
    (e: unknown) =>
      e instanceof ConfigError && /backup\.schedule\.diff/.test(e.message) && /daily HH:MM/.test(e.message),
  );
});

test('with pgBackRest a node archives and restores through it; without, the safe archive stays', () => {
  const loaded = parseConfig(yaml('  enabled: true'), '/etc/pgscale/pgscale.yaml');
  const node = { ...loaded.config.groups[0]!.nodes[0]!, group: 0 } as Parameters<
    typeof renderNodeConf
  >[0]['node'];
  const bins = { dir: '/nonexistent/bin', major: 15 } as PgBinaries;
  const base = {
    config: loaded.config,
    node,
    bins,
    archiveDir: '/a',
    archiveScript: '/s',
    peers: [],
    tls: null,
  };
  const cmds = pgbackrestCommands(
    { bin: '/usr/bin/pgbackrest', version: '2.45' },
    '/srv/pgscale',
    'shop-g0',
    '/srv/pgscale/nodes/a0',
  );
  const withPb = renderNodeConf({ ...base, pgbackrest: cmds });
  assert.match(
    withPb,
    /^archive_command = '\/usr\/bin\/pgbackrest --config=\/srv\/pgscale\/pgbackrest\/pgbackrest.conf --stanza=shop-g0 --pg1-path=\/srv\/pgscale\/nodes\/a0 archive-push "%p"'$/m,
  );
  assert.match(withPb, /^restore_command = '.*archive-get %f "%p"'$/m);
  const without = renderNodeConf(base);
  assert.match(without, /^archive_command = '\/s %p %f \/a'$/m);
});

test('supportsMajor follows the releases that added each PostgreSQL version', () => {
  assert.equal(supportsMajor({ bin: 'x', version: '2.45' }, 15), true);
  assert.equal(supportsMajor({ bin: 'x', version: '2.45' }, 16), false);
  assert.equal(supportsMajor({ bin: 'x', version: '2.46' }, 16), true);
  assert.equal(supportsMajor({ bin: 'x', version: '2.10' }, 13), false);
});
