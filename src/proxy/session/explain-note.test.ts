import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBackendMessage, encodeBackendMessage } from '../../protocol/backend-messages.js';
import { TypedMessage } from '../../protocol/framer.js';
import type { RouteFacts } from '../../sharding/explain-route.js';
import { ExplainRewrite, jsonWithRoute, routeLines, routeObject } from './explain-note.js';

const ONE: RouteFacts = {
  kind: 'one',
  group: '1',
  shards: [{ id: 102011, name: 'users_102011' }],
  reason: 'users.user_id = 5',
};

const row = (text: string) => encodeBackendMessage({ name: 'DataRow', values: [Buffer.from(text)] });

/** The texts of DataRows (and the messages' names otherwise) among `bytes`. */
function texts(bytes: Buffer[]): string[] {
  return bytes.map((b) => {
    const m = decodeBackendMessage(String.fromCharCode(b[0]!), b.subarray(5));
    assert.ok(m.ok);
    if (m.value.name === 'DataRow') return m.value.values[0]!.toString();
    if (m.value.name === 'NoticeResponse')
      return `NOTICE ${m.value.fields.find((f) => f.code === 'M')!.value}`;
    return m.value.name;
  });
}

test('text: the route rows first, then the group’s plan indented beneath the arrow', () => {
  const r = new ExplainRewrite({ format: 'text', facts: ONE }, { group: '1', server: 'primary' });
  const first = texts(
    r.row(TypedMessage.of(row('Index Scan using users_102011_pkey on users_102011 users'))),
  );
  const second = texts(r.row(TypedMessage.of(row('  Index Cond: (user_id = 5)'))));
  assert.deepEqual(first, [
    'Custom Scan (pgscale router)',
    '  Group: 1  Shard: 102011 (users_102011)',
    '  Reason: users.user_id = 5',
    '  ->  Plan on group 1 (primary)',
    '        Index Scan using users_102011_pkey on users_102011 users',
  ]);
  assert.deepEqual(second, ['          Index Cond: (user_id = 5)']);
});

test('text: local, reference and every-group routes say so', () => {
  const on = { group: '0', server: 'replica' as const };
  assert.deepEqual(routeLines({ kind: 'local', group: null, shards: [], reason: null }, on), [
    'Custom Scan (pgscale router)',
    '  Group: 0 (no distributed or reference table)',
    '  ->  Plan on group 0 (replica)',
  ]);
  assert.match(routeLines({ kind: 'reference', group: null, shards: [], reason: null }, on)[1]!, /any group/);
  const every = routeLines(
    { kind: 'every', group: null, shards: [], reason: 'write to reference table "t"' },
    on,
  );
  assert.match(every[1]!, /every group/);
  assert.equal(every[2], '  Reason: write to reference table "t"');
});

test('JSON: a "pgscale" key first in the top-level object; the document still parses', () => {
  const doc =
    '[\n  {\n    "Plan": {\n      "Node Type": "Seq Scan",\n      "Total Cost": 1.00\n    }\n  }\n]';
  const out = jsonWithRoute(doc, routeObject(ONE, { group: '1', server: 'primary' }))!;
  const parsed = JSON.parse(out) as [{ pgscale: Record<string, unknown>; Plan: unknown }];
  assert.deepEqual(parsed[0].pgscale, {
    Router: 'pgscale',
    Route: 'one group',
    Group: '1',
    Server: 'primary',
    Shards: [{ 'Shard Id': 102011, 'Shard Name': 'users_102011' }],
    Reason: 'users.user_id = 5',
  });
  assert.deepEqual(parsed[0].Plan, { 'Node Type': 'Seq Scan', 'Total Cost': 1 });
  // PostgreSQL's own text is kept as it was (its numbers' digits too).
  assert.ok(out.includes('"Total Cost": 1.00'));
  assert.ok(out.startsWith('[\n  {\n    "pgscale": {\n      "Router": "pgscale",'));
  assert.equal(jsonWithRoute('not json', {}), null);
  const r = new ExplainRewrite({ format: 'json', facts: ONE }, { group: '1', server: 'primary' });
  const [one] = texts(r.row(TypedMessage.of(row(doc))));
  assert.ok(JSON.parse(one!));
});

test('XML and YAML: the document as it came, after a NOTICE with the route', () => {
  const r = new ExplainRewrite({ format: 'yaml', facts: ONE }, { group: '1', server: 'primary' });
  const out = texts(r.row(TypedMessage.of(row('- Plan: \n    Node Type: "Seq Scan"'))));
  assert.deepEqual(out, [
    'NOTICE pgscale route: Group: 1  Shard: 102011 (users_102011); Reason: users.user_id = 5; Plan on group 1 (primary)',
    '- Plan: \n    Node Type: "Seq Scan"',
  ]);
});

test('host replies: DataRows rewritten, the other messages kept', () => {
  const r = new ExplainRewrite(
    { format: 'text', facts: { kind: 'every', group: null, shards: [], reason: null } },
    { group: '0', server: 'primary' },
  );
  const cc = encodeBackendMessage({ name: 'CommandComplete', tag: 'EXPLAIN' });
  const out = texts(r.rewriteReplies([row('Insert on t'), cc]));
  assert.equal(out.at(-2), '        Insert on t');
  assert.equal(out.at(-1), 'CommandComplete');
  assert.equal(out[0], 'Custom Scan (pgscale router)');
});
