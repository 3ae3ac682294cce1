import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sumTags } from './every-group-tags.js';

test('INSERT counts of the parts are summed, the oid field kept', () => {
  assert.equal(sumTags(['INSERT 0 3', 'INSERT 0 2', 'INSERT 0 0']), 'INSERT 0 5');
});

test('UPDATE, DELETE and SELECT counts are summed', () => {
  assert.equal(sumTags(['UPDATE 1', 'UPDATE 4']), 'UPDATE 5');
  assert.equal(sumTags(['DELETE 0', 'DELETE 2']), 'DELETE 2');
  assert.equal(sumTags(['SELECT 2', 'SELECT 2']), 'SELECT 4');
});

test('tags without a count, or that disagree, are the first part’s', () => {
  assert.equal(sumTags(['ALTER TABLE', 'ALTER TABLE']), 'ALTER TABLE');
  assert.equal(sumTags(['CREATE INDEX', 'CREATE INDEX']), 'CREATE INDEX');
  assert.equal(sumTags(['INSERT 0 1', 'UPDATE 1']), 'INSERT 0 1');
  assert.equal(sumTags(['TRUNCATE TABLE']), 'TRUNCATE TABLE');
  assert.equal(sumTags([]), '');
});
