/**
 * The decision records of transactions on several groups over a store with StateStore's
 * compare-and-set semantics (a map with revisions, as the embedded store and etcd behave): the
 * first decision written holds, whoever asks after; names round-trip; records are listed with
 * their age and removed only at the revision read.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TxDecisions, newTxId, parseTxGid, txGid } from './tx-decisions.js';
import type { DecisionBackend } from './tx-decisions.js';

class MapStore implements DecisionBackend {
  private rev = 0;
  readonly keys = new Map<string, { value: string; revision: number }>();
  get(key: string) {
    return Promise.resolve(this.keys.get(key) ?? null);
  }
  list(prefix: string) {
    return Promise.resolve(
      [...this.keys].filter(([k]) => k.startsWith(prefix)).map(([key, v]) => ({ key, ...v })),
    );
  }
  compareAndSet(key: string, expected: number, value: string) {
    const cur = this.keys.get(key);
    if ((cur?.revision ?? 0) !== expected) return Promise.resolve(null);
    this.keys.set(key, { value, revision: ++this.rev });
    return Promise.resolve(this.rev);
  }
  compareAndDelete(key: string, expected: number) {
    const cur = this.keys.get(key);
    if (cur === undefined || cur.revision !== expected) return Promise.resolve(false);
    this.keys.delete(key);
    return Promise.resolve(true);
  }
}

describe('transaction decisions', () => {
  test('the first decision holds: a commit after an abort is refused, and the reverse', async () => {
    const d = new TxDecisions(new MapStore());
    assert.equal(await d.decide('aa11bb22cc33', 'abort', ['0', '1']), 'abort');
    assert.equal(await d.decide('aa11bb22cc33', 'commit', ['0', '1']), 'abort');
    assert.equal(await d.decide('dd44ee55ff66', 'commit', ['0', '1']), 'commit');
    assert.equal(await d.decide('dd44ee55ff66', 'abort', ['0', '1']), 'commit');
    assert.equal(await d.decision('dd44ee55ff66'), 'commit');
    assert.equal(await d.decision('000000000000'), null);
  });

  test('racing writers agree on one decision', async () => {
    const store = new MapStore();
    const d = new TxDecisions(store);
    for (let i = 0; i < 20; i++) {
      const id = newTxId();
      const got = await Promise.all([d.decide(id, 'commit', ['0']), d.decide(id, 'abort', ['0'])]);
      assert.equal(got[0], got[1]);
    }
  });

  test('records are listed with their age, and forgotten', async () => {
    let now = 1_000_000;
    const store = new MapStore();
    const d = new TxDecisions(store, () => now);
    await d.decide('abcdef012345', 'commit', ['0', '2']);
    now += 7000;
    const [r] = await d.list();
    assert.equal(r!.id, 'abcdef012345');
    assert.equal(r!.decision, 'commit');
    assert.equal(r!.ageMs, 7000);
    await d.remove('abcdef012345', r!.revision + 1); // another revision: kept
    assert.equal((await d.list()).length, 1);
    await d.forget('abcdef012345');
    assert.equal((await d.list()).length, 0);
  });

  test('a record that does not decode is an error, never a guess', async () => {
    const store = new MapStore();
    await store.compareAndSet('sharding/tx/abcabcabcabc', 0, '{"decision":"maybe"}');
    const d = new TxDecisions(store);
    await assert.rejects(d.decide('abcabcabcabc', 'commit', ['0']), /does not decode/);
  });

  test('transaction names round-trip; other names are not taken for them', () => {
    const id = newTxId();
    assert.match(id, /^[0-9a-f]{24}$/);
    assert.deepEqual(parseTxGid(txGid(id, '3')), { id, group: '3' });
    for (const gid of ['pgscale:write:abc:0:2', 'pgscale:tx:xyz:1', 'pgscale:tx:abcdef01:', 'x'])
      assert.equal(parseTxGid(gid), null, gid);
  });
});
