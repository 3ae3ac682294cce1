import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SessionEffect } from '../../sql/session-effect.js';
import { sessionSearchPath } from './search-path-value.js';

test("the session's search_path: the transaction's last SET, SET LOCAL or RESET, else the committed one", () => {
  const none = new Map<string, string>();
  const startup = new Map([['search_path', "'app', 'public'"]]);
  const committed = new Map([['search_path', 'public']]);
  const set = (value: string): SessionEffect => ({ kind: 'set', name: 'search_path', value });
  const local = (searchPath: string): SessionEffect => ({ kind: 'local', searchPath });
  assert.equal(sessionSearchPath(none, none, []), undefined);
  assert.equal(sessionSearchPath(startup, startup, []), "'app', 'public'");
  assert.equal(sessionSearchPath(committed, startup, []), 'public');
  assert.equal(sessionSearchPath(committed, startup, [set('a')]), 'a');
  assert.equal(sessionSearchPath(committed, startup, [set('a'), local('b')]), 'b');
  assert.equal(sessionSearchPath(committed, startup, [local('b'), set('a')]), 'a');
  assert.equal(
    sessionSearchPath(committed, startup, [set('a'), { kind: 'reset', name: 'search_path' }]),
    "'app', 'public'",
  );
  assert.equal(sessionSearchPath(committed, none, [{ kind: 'reset_all' }]), undefined);
  assert.equal(
    sessionSearchPath(committed, startup, [{ kind: 'set', name: 'work_mem', value: '1MB' }]),
    'public',
  );
  assert.equal(sessionSearchPath(committed, startup, [{ kind: 'local' }]), 'public');
});
