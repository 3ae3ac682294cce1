import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ScatterWork } from '../../sharding/scatter-run.js';
import { fastOrGeneral } from './shard-target.js';
import type { ShardTarget } from './shard-target.js';

const general: ShardTarget = { kind: 'global', text: 'SELECT count(*) FROM pgscale_all.t1 AS t' };
const work: ScatterWork = {
  kind: 'scatter',
  sql: 'SELECT count(*) FROM t',
  plan: { shape: 'aggregate', groupSql: '', values: 1, collations: [], from: 'FROM t', final: [] },
  groups: ['0', '1'],
  home: '0',
  global: 'SELECT count(*) FROM pgscale_all.t1 AS t',
};
const fast = { kind: 'host', reason: 'a read across groups', work, general } as const;
const settings = (o: Record<string, string>) => new Map(Object.entries(o));

test('a fast read: the general path inside a transaction block, else the fast one', () => {
  assert.equal(fastOrGeneral(fast, true, settings({})), general);
  assert.equal(fastOrGeneral(fast, false, settings({ application_name: 'x' })), fast);
});

test("the client's value settings go with the work; what cannot be replayed safely goes the general way", () => {
  const t = fastOrGeneral(
    fast,
    false,
    settings({ TimeZone: "'Asia/Kolkata'", datestyle: 'ISO, DMY', client_encoding: 'UTF8' }),
  );
  assert.ok(t.kind === 'host' && t.work.kind === 'scatter');
  assert.deepEqual(t.work.settings, [
    ['TimeZone', "'Asia/Kolkata'"],
    ['DateStyle', 'ISO, DMY'],
  ]);
  for (const s of <Record<string, string>[]>[
    { client_encoding: 'LATIN1' },
    { extra_float_digits: '0' },
    { role: 'reader' },
    { timezone: "'UTC'; RESET ROLE" },
  ])
    assert.equal(fastOrGeneral(fast, false, settings(s)), general, JSON.stringify(s));
});
