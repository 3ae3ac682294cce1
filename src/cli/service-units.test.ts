import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UNIT_MARKER, renderUnit, unitName } from './service-units.js';
import type { UnitInput } from './service-units.js';

const base: UnitInput = {
  kind: 'controller',
  cluster: 'main',
  configFile: '/srv/db/pgscale.yaml',
  workingDir: '/srv/db',
  user: 'pgscale',
  group: 'pgscale',
  node: '/usr/bin/node',
  script: '/opt/pgscale/bin/pgscale.js',
  docs: '/opt/pgscale/docs/operations.md',
};

const line = (unit: string, key: string) => unit.split('\n').filter((l) => l.startsWith(`${key}=`));

test('unit names: the controller by the cluster name, the others with their kind', () => {
  assert.equal(unitName('controller', 'main'), 'pgscale-main.service');
  assert.equal(unitName('agent', 'main'), 'pgscale-main-agent.service');
  assert.equal(unitName('proxy', 'main'), 'pgscale-main-proxy.service');
});

test('processes that run PostgreSQL leave it to them on stop; the proxy does not', () => {
  const c = renderUnit(base);
  assert.ok(c.startsWith(UNIT_MARKER));
  assert.deepEqual(line(c, 'KillMode'), ['KillMode=process']);
  assert.deepEqual(line(c, 'ExecStart'), [
    'ExecStart=/usr/bin/node /opt/pgscale/bin/pgscale.js controller -c /srv/db/pgscale.yaml',
  ]);
  assert.deepEqual(line(renderUnit({ ...base, kind: 'agent' }), 'KillMode'), ['KillMode=process']);
  const p = renderUnit({ ...base, kind: 'proxy', proxyCluster: true });
  assert.deepEqual(line(p, 'KillMode'), ['KillMode=mixed']);
  assert.match(line(p, 'ExecStart')[0]!, / proxy -c \/srv\/db\/pgscale\.yaml --cluster$/);
});

test('paths with spaces, % and $ are quoted and escaped as systemd reads them; line breaks are refused', () => {
  const u = renderUnit({
    ...base,
    configFile: '/srv/my db/100%/$HOME.yaml',
    workingDir: '/srv/my db',
    env: { PGSCALE_PG_BIN: '/opt/pg 16/bin' },
  });
  assert.deepEqual(line(u, 'ExecStart'), [
    'ExecStart=/usr/bin/node /opt/pgscale/bin/pgscale.js controller -c "/srv/my db/100%%/$$HOME.yaml"',
  ]);
  assert.deepEqual(line(u, 'WorkingDirectory'), ['WorkingDirectory="/srv/my db"']);
  assert.deepEqual(line(u, 'Environment'), ['Environment="PGSCALE_PG_BIN=/opt/pg 16/bin"']);
  assert.throws(() => renderUnit({ ...base, configFile: '/a\nExecStartPre=/bin/evil' }), /line break/);
});
