import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rangeText, spread } from './repeat.js';

test('spread: every run value, min, max and median of each key figure', () => {
  const rows = spread([
    {
      keyFigures: [
        { name: 'reads/s', unit: 'reads/s', value: 100 },
        { name: 'lost', unit: 'commits', value: 0 },
      ],
    },
    {
      keyFigures: [
        { name: 'reads/s', unit: 'reads/s', value: 130 },
        { name: 'lost', unit: 'commits', value: 0 },
      ],
    },
    { keyFigures: [{ name: 'reads/s', unit: 'reads/s', value: 90 }] },
  ]);
  assert.deepEqual(rows, [
    { name: 'reads/s', unit: 'reads/s', values: [100, 130, 90], min: 90, max: 130, median: 100 },
    { name: 'lost', unit: 'commits', values: [0, 0, null], min: 0, max: 0, median: 0 },
  ]);
  assert.equal(rangeText(rows[0]!), '90–130 (median 100)');
  assert.equal(rangeText(rows[1]!), '0 (all runs)');
});

test('spread: an even number of runs takes the middle two for the median; runs without figures give no rows', () => {
  const rows = spread([1, 2, 3, 10].map((value) => ({ keyFigures: [{ name: 'p', unit: 's', value }] })));
  assert.equal(rows[0]!.median, 2.5);
  assert.deepEqual(spread([{}, {}]), []);
});
