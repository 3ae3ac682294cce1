import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findTool, haproxyNote, patroniNote, pgbouncerNote } from './tools.js';

test('a tool is found on PATH, a missing one is null', () => {
  assert.ok(findTool('node').path?.endsWith('/node'));
  assert.equal(findTool('no-such-tool-pgscale').path, null);
});

test('the notes say in one line what was not compared and why', () => {
  assert.match(pgbouncerNote({ name: 'pgbouncer', path: null }), /not installed.*not measured/);
  assert.match(
    pgbouncerNote({ name: 'pgbouncer', path: '/usr/sbin/pgbouncer' }),
    /installed \(\/usr\/sbin\/pgbouncer\)/,
  );
  const patroni = { name: 'patroni', path: '/usr/bin/patroni' };
  const etcd = { name: 'etcd', path: '/usr/bin/etcd' };
  const none = (name: string) => ({ name, path: null });
  assert.match(
    patroniNote(patroni, none('etcd'), false),
    /^etcd is not installed on this machine .*not measured/,
  );
  assert.match(patroniNote(none('patroni'), none('etcd'), true), /^patroni and etcd are not installed/);
  assert.match(patroniNote(patroni, etcd, true), /installed .*full run only/);
  assert.match(
    haproxyNote(none('haproxy'), false),
    /^HAProxy is not installed on this machine .*not measured/,
  );
  assert.match(haproxyNote({ name: 'haproxy', path: '/usr/sbin/haproxy' }, true), /full run only/);
  for (const n of [patroniNote(patroni, none('etcd'), false), haproxyNote(none('haproxy'), true)])
    assert.ok(!n.includes('\n'));
});

test('PGSCALE_DEMO_WITHOUT leaves a tool out as if it were not installed', () => {
  const saved = process.env.PGSCALE_DEMO_WITHOUT;
  process.env.PGSCALE_DEMO_WITHOUT = 'haproxy, node';
  try {
    assert.equal(findTool('node').path, null);
    assert.ok(findTool('sh').path);
  } finally {
    if (saved === undefined) delete process.env.PGSCALE_DEMO_WITHOUT;
    else process.env.PGSCALE_DEMO_WITHOUT = saved;
  }
});
