import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findTool, patroniNote, pgbouncerNote } from './tools.js';

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
  const n = patroniNote({ name: 'patroni', path: '/usr/bin/patroni' }, { name: 'haproxy', path: null });
  assert.match(n, /Installed here: patroni \(\/usr\/bin\/patroni\)\. Not installed: haproxy\. /);
  assert.ok(!n.includes('\n'));
});
