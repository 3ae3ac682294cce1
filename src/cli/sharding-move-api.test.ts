import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { moveHttp } from './sharding-move-api.js';
import { MoveRunner } from './sharding-moves.js';
import { ShardHolds } from '../proxy/shard-hold.js';
import { createLogger } from '../obs/logger.js';

const runner = () =>
  new MoveRunner({
    catalogs: () => null,
    connect: () => Promise.reject(new Error('no server here')),
    conninfo: () => '',
    holds: new ShardHolds(),
    logger: createLogger({ level: 'silent' }),
    store: () => null,
  });

describe('moveHttp: the /sharding endpoints refuse bad bodies before anything happens', () => {
  const cases: [string, unknown, number, RegExp][] = [
    ['/sharding/move', { shard_id: 102008, to: '1', node: 'x' }, 400, /unknown key "node".*shard_id, to/],
    ['/sharding/move', { shard_id: '102008', to: '1' }, 400, /shard_id: must be a shard id/],
    ['/sharding/move', { shard_id: 1.5, to: '1' }, 400, /shard_id/],
    ['/sharding/move', [1, 2], 400, /must be a JSON object/],
    ['/sharding/rebalance', { by: 'bytes' }, 400, /by must be "count" or "size"/],
    ['/sharding/drain', { group: 'one' }, 400, /group: must name a group/],
    ['/sharding/drain', { group: { x: 1 } }, 400, /group: must name a group/],
    ['/sharding/cancel', { now: true }, 400, /unknown key "now".*none/],
    // Well formed, but nothing is loaded here: the runner says so.
    ['/sharding/rebalance', {}, 503, /catalog is not loaded/],
  ];
  for (const [path, body, status, error] of cases)
    test(`${path} ${JSON.stringify(body)} → ${status}`, () => {
      const r = moveHttp(runner(), 'POST', path, body);
      assert.ok(r !== null);
      assert.equal(r.status, status);
      assert.match(String((r.body as { error?: string }).error), error);
    });

  test('GET /sharding/moves answers; other paths are not ours; cancel with no job is 409', () => {
    const m = runner();
    assert.equal(moveHttp(m, 'GET', '/sharding/moves', null)?.status, 200);
    assert.equal(moveHttp(m, 'GET', '/ha', null), null);
    assert.equal(moveHttp(m, 'POST', '/sharding/nothing', {}), null);
    assert.equal(moveHttp(m, 'POST', '/sharding/cancel', null)?.status, 409);
  });
});
