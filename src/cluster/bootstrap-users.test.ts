import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifierMatches } from './bootstrap-users.js';
import { scramVerifier } from './secrets.js';

void test('a stored SCRAM verifier matches its own password only (so up sets a changed one again)', async () => {
  const v = await scramVerifier('correct horse');
  assert.equal(await verifierMatches(v, 'correct horse'), true);
  assert.equal(await verifierMatches(v, 'correct horse!'), false);
  assert.equal(await verifierMatches(null, 'x'), false);
  assert.equal(await verifierMatches('md5abcdef', 'x'), false);
});
