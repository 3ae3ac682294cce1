import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../config/load.js';
import { INIT_DEFAULTS, renderConfig } from '../config/template.js';
import { HAPROXY_DEFAULTS, renderHaproxyConfig } from './haproxy-cfg.js';

const opts = { ...HAPROXY_DEFAULTS, configFile: '/x/pgscale.yaml' };
const load = (text: string) => parseConfig(text, '/x/pgscale.yaml').config;

/** The lines of the section `listen NAME` (up to the next blank line). */
function section(cfg: string, name: string): string[] {
  const lines = cfg.split('\n');
  const start = lines.indexOf(`listen ${name}`);
  assert.ok(start >= 0, `no listen ${name} in\n${cfg}`);
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end < 0 ? undefined : end).map((l) => l.trim());
}

test('one group: a write listener checked on /primary, a read listener on /replica?lag=16MB', () => {
  const cfg = renderHaproxyConfig(load(renderConfig(INIT_DEFAULTS)), opts);
  assert.deepEqual(section(cfg, 'pgscale_write'), [
    'bind 127.0.0.1:5000',
    'option httpchk GET /primary',
    'http-check expect status 200',
    'default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions',
    'server s0n0 127.0.0.1:54320 check port 8009',
    'server s0n1 127.0.0.1:54321 check port 8010',
    'server s0n2 127.0.0.1:54322 check port 8011',
  ]);
  const read = section(cfg, 'pgscale_read');
  assert.equal(read[0], 'bind 127.0.0.1:5001');
  assert.ok(read.includes('balance roundrobin'));
  assert.ok(read.includes('option httpchk GET /replica?lag=16MB'));
  assert.match(cfg, /^defaults\n {4}mode tcp$/m);
  assert.match(cfg, /timeout check 5s/);
  assert.doesNotMatch(cfg, /listen stats/);
});

test('ports, stats, no lag limit, bind address', () => {
  const cfg = renderHaproxyConfig(load(renderConfig(INIT_DEFAULTS)), {
    ...opts,
    writePort: 6000,
    readPort: 6001,
    statsPort: 7000,
    maxLag: null,
    bind: '*',
  });
  assert.equal(section(cfg, 'pgscale_write')[0], 'bind *:6000');
  assert.ok(section(cfg, 'pgscale_read').includes('option httpchk GET /replica'));
  assert.deepEqual(section(cfg, 'stats').slice(0, 3), ['mode http', 'bind *:7000', 'stats enable']);
});

test('several groups get a pair of listeners each, two ports apart', () => {
  const cfg = renderHaproxyConfig(load(renderConfig({ ...INIT_DEFAULTS, groups: 2, replicas: 1 })), opts);
  assert.equal(section(cfg, 'pgscale_group0_write')[0], 'bind 127.0.0.1:5000');
  assert.equal(section(cfg, 'pgscale_group0_read')[0], 'bind 127.0.0.1:5001');
  assert.equal(section(cfg, 'pgscale_group1_write')[0], 'bind 127.0.0.1:5002');
  const r1 = section(cfg, 'pgscale_group1_read');
  assert.equal(r1[0], 'bind 127.0.0.1:5003');
  assert.deepEqual(
    r1.filter((l) => l.startsWith('server')),
    ['server s1n0 127.0.0.1:54322 check port 8011', 'server s1n1 127.0.0.1:54323 check port 8012'],
  );
});

test('explicit api_port and a non-local agent address are used in the checks', () => {
  const text = renderConfig({ ...INIT_DEFAULTS, replicas: 1, host: '10.0.0.5' })
    .replace('listen: 127.0.0.1\n  port: 8008', 'listen: 10.0.0.9\n  port: 8008')
    .replace('port: 54321', 'port: 54321\n        api_port: 9001');
  const cfg = renderHaproxyConfig(load(text), opts);
  assert.deepEqual(
    section(cfg, 'pgscale_write').filter((l) => l.startsWith('server')),
    [
      'server s0n0 10.0.0.5:54320 check addr 10.0.0.9 port 8009',
      'server s0n1 10.0.0.5:54321 check addr 10.0.0.9 port 9001',
    ],
  );
});

test('a HAProxy port that clashes with the cluster or another is refused', () => {
  const config = load(renderConfig(INIT_DEFAULTS));
  assert.throws(
    () => renderHaproxyConfig(config, { ...opts, writePort: 54320 }),
    /write port of group 0 \(--write-port\) 54320 is already the port of node s0n0/,
  );
  assert.throws(
    () => renderHaproxyConfig(config, { ...opts, readPort: 5000 }),
    /read port of group 0 \(--read-port\) 5000 is already the write port of group 0/,
  );
  assert.throws(
    () => renderHaproxyConfig(config, { ...opts, statsPort: 8009 }),
    /stats port \(--stats-port\) 8009 is already the api_port of node s0n0/,
  );
});
