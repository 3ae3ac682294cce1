import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, allNodes, homeGroup } from './load.js';
import { INIT_DEFAULTS, renderConfig } from './template.js';

const base = renderConfig(INIT_DEFAULTS);
const bad = (text: string) => () => parseConfig(text, '/x/pgscale.yaml');

test('the generated default config loads with the documented defaults', () => {
  const { config, dataDir } = parseConfig(base, '/x/pgscale.yaml');
  assert.equal(dataDir, '/x/data');
  assert.equal(config.replication.synchronous, 'off');
  assert.equal(config.replication.archive, true);
  assert.equal(config.proxy.port, 6432);
  assert.equal(config.http.port, 8008);
  assert.deepEqual(config.log, { rotate_size_mb: 10, keep_files: 5 });
  assert.deepEqual(
    allNodes(config).map((n) => [n.name, n.port, n.group, n.index]),
    [
      ['s0n0', 54320, 0, 0],
      ['s0n1', 54321, 0, 1],
      ['s0n2', 54322, 0, 2],
    ],
  );
  assert.ok(Object.isFrozen(config.groups[0]!.nodes[0]));
});

test('api ports default to http.port + 1 + the position among all nodes; api_port overrides', () => {
  const { config } = parseConfig(
    renderConfig({ ...INIT_DEFAULTS, groups: 2, replicas: 1 }).replace(
      'port: 54322',
      'port: 54322\n        api_port: 9100',
    ),
    '/x/p.yaml',
  );
  assert.deepEqual(
    allNodes(config).map((n) => [n.name, n.apiPort]),
    [
      ['s0n0', 8009],
      ['s0n1', 8010],
      ['s1n0', 9100],
      ['s1n1', 8012],
    ],
  );
});

test('a minimal config gets defaults for everything but groups', () => {
  const { config } = parseConfig('groups:\n  - nodes:\n      - { name: a, port: 5000 }\n', '/x/p.yaml');
  assert.equal(config.cluster.name, 'pgscale');
  assert.equal(config.postgres.superuser, 'postgres');
  assert.equal(config.groups[0]!.nodes[0]!.host, 'localhost');
});

test('the old key shards: still loads, as groups:, with a warning naming the new key', () => {
  const text = 'shards:\n  - nodes:\n      - { name: a, port: 5000 }\n';
  const loaded = parseConfig(text, '/x/p.yaml');
  assert.equal(loaded.config.groups[0]!.nodes[0]!.name, 'a');
  assert.equal('shards' in loaded.config, false);
  assert.deepEqual(loaded.warnings, [
    '/x/p.yaml: shards: is the old name of groups: rename it to groups: (shards: is still read, for now)',
  ]);
  assert.equal(parseConfig(text.replace('shards', 'groups'), '/x/p.yaml').warnings, undefined);
});

test('a database lives in group 0 unless a group names it in databases', () => {
  const text = renderConfig({ ...INIT_DEFAULTS, groups: 2, replicas: 0 }).replace(
    /(- nodes:\n)(?![\s\S]*- nodes:)/,
    '- databases: [orders]\n    nodes:\n',
  );
  const { config } = parseConfig(text, '/x/p.yaml');
  assert.deepEqual(
    config.groups.map((g) => g.databases),
    [[], ['orders']],
  );
  assert.equal(homeGroup(config, 'orders'), 1);
  assert.equal(homeGroup(config, 'app'), 0);
});

test('synchronous accepts off, on, quorum N and booleans', () => {
  for (const [v, want] of [
    ['off', 'off'],
    ['on', 'on'],
    ['"quorum 2"', 'quorum 2'],
    ['true', 'on'],
    ['false', 'off'],
  ]) {
    const { config } = parseConfig(base.replace('synchronous: off', `synchronous: ${v}`), '/x/p.yaml');
    assert.equal(config.replication.synchronous, want);
  }
});

const cases: [string, string, RegExp][] = [
  ['unknown top-level key', base + 'groupz: 1\n', /unknown key groupz/],
  [
    'unknown nested key, with the accepted ones',
    base.replace('archive: true', 'archiv: true'),
    /unknown key replication\.archiv \(accepted keys here: synchronous, archive,/,
  ],
  ['wrong type', base.replace('port: 6432', 'port: "six"'), /proxy\.port: .*expected number/],
  ['port out of range', base.replace('port: 54320', 'port: 70000'), /groups\[0\]\.nodes\[0\]\.port/],
  [
    'bad synchronous value',
    base.replace('synchronous: off', 'synchronous: maybe'),
    /replication\.synchronous: accepted values: off, on, "quorum N"/,
  ],
  [
    'bad size',
    base.replace('wal_keep_size: 256MB', 'wal_keep_size: lots'),
    /replication\.wal_keep_size: must be a size/,
  ],
  [
    'bad node name',
    base.replace('name: s0n1', 'name: S0-N1'),
    /groups\[0\]\.nodes\[1\]\.name: must be lowercase/,
  ],
  [
    'duplicate node name',
    base.replace('name: s0n1', 'name: s0n0'),
    /"s0n0" is already the name of groups\[0\]\.nodes\[0\]/,
  ],
  [
    'duplicate port',
    base.replace('port: 54321', 'port: 54320'),
    /groups\[0\]\.nodes\[1\]\.port: port 54320 is already used by groups\[0\]\.nodes\[0\]\.port/,
  ],
  [
    'node port equal to the proxy port',
    base.replace('port: 54322', 'port: 6432'),
    /port 6432 is already used by proxy\.port/,
  ],
  [
    'derived api port on a node port',
    base.replace('port: 8008', 'port: 54319'),
    /groups\[0\]\.nodes\[0\]\.api_port \(not set; derived as http\.port \+ 1 \+ 0 = 54320: set api_port explicitly or move http\.port\): port 54320 is already used by groups\[0\]\.nodes\[0\]\.port/,
  ],
  [
    'explicit api port on the proxy port',
    base.replace('port: 54321', 'port: 54321\n        api_port: 6432'),
    /groups\[0\]\.nodes\[1\]\.api_port: port 6432 is already used by proxy\.port/,
  ],
  [
    'two nodes with the same api port',
    base.replace('port: 54321', 'port: 54321\n        api_port: 8009'),
    /groups\[0\]\.nodes\[1\]\.api_port: port 8009 is already used by groups\[0\]\.nodes\[0\]\.api_port \(not set; derived/,
  ],
  [
    'quorum larger than the standbys',
    base.replace('synchronous: off', 'synchronous: quorum 3'),
    /needs 3 standbys but group 0 has 2/,
  ],
  ['missing groups', base.replace(/^groups:[\s\S]*$/m, ''), /groups: is required/],
  [
    'empty group',
    base.replace(/^groups:[\s\S]*$/m, 'groups:\n  - nodes: []\n'),
    /a group needs at least one node/,
  ],
  [
    'both groups and their old name shards',
    base + 'shards:\n  - nodes:\n      - { name: x, port: 7000 }\n',
    /shards: is the old name of groups, and groups: is given too; keep only groups:/,
  ],
  [
    'a database homed in two groups',
    renderConfig({ ...INIT_DEFAULTS, groups: 2, replicas: 0 }).replace(
      /(- nodes:\n)/g,
      '- databases: [orders]\n    nodes:\n',
    ),
    /groups\[1\]\.databases\[0\]: "orders" already lives in group 0/,
  ],
  ['unknown HA store', base.replace('store: embedded', 'store: zookeeper'), /ha\.store/],
  [
    'negative HA grace',
    base.replace('primary_down_grace: 1', 'primary_down_grace: -1'),
    /ha\.primary_down_grace/,
  ],
  ['HA TTL below 2 s', base.replace('ttl: 10', 'ttl: 1'), /ha\.ttl/],
  [
    'etcd endpoint that is not a URL',
    base.replace('store: embedded', 'store: etcd\n  etcd:\n    endpoints: [localhost]'),
    /ha\.etcd\.endpoints\[0\]: must be a URL/,
  ],
  ['unknown HA key', base.replace('ttl: 10', 'ttl: 10\n  failover: yes'), /ha.*failover/],
  ['invalid YAML', base + 'proxy: [unclosed\n', /invalid YAML/],
  ['duplicate YAML key', base + 'http:\n  port: 1\n', /invalid YAML/],
  ['a list at the top', '- a\n- b\n', /expected a mapping/],
  ['no rotated log kept', base + 'log:\n  keep_files: 0\n', /log\.keep_files: /],
  [
    'bad network',
    base.replace('networks: [127.0.0.1/32, ::1/128]', 'networks: [everyone]'),
    /postgres\.client_networks\[0\]: must be an address range/,
  ],
];

for (const [what, text, re] of cases) {
  test(`config error: ${what}`, () => {
    assert.throws(bad(text), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'PGSCALE_CONFIG_INVALID');
      assert.match(e.message, re);
      assert.match(e.message, /^\/x\/pgscale\.yaml: /);
      return true;
    });
  });
}
