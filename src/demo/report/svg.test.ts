import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeXml, niceTicks, renderChart } from './svg.js';

test('ticks are round, start at 0 and reach the maximum', () => {
  assert.deepEqual(niceTicks(0), [0, 1]);
  assert.deepEqual(niceTicks(10), [0, 2, 4, 6, 8, 10]);
  const t = niceTicks(5321);
  assert.equal(t[0], 0);
  assert.ok(t[t.length - 1]! >= 5321);
  assert.ok(t.length >= 4 && t.length <= 7, t.join());
});

test('each kind of chart draws its data as .datum elements, with text escaped', () => {
  const bars = renderChart({
    type: 'bars',
    title: 'a <b> & c',
    unit: 'reads/s',
    bars: [
      { label: 'one', value: 10 },
      { label: 'two', value: 20, note: '2×' },
    ],
  });
  assert.equal(bars.match(/class="datum"/g)?.length, 2);
  assert.ok(bars.includes('a &lt;b&gt; &amp; c'));
  const curve = renderChart({
    type: 'percentiles',
    title: 'latency',
    series: [
      {
        name: 'direct',
        points: [
          { p: 50, ms: 1 },
          { p: 99, ms: 10 },
          { p: 100, ms: 20 },
        ],
      },
      {
        name: 'proxy',
        points: [
          { p: 50, ms: 2 },
          { p: 99, ms: 5 },
        ],
      },
    ],
  });
  assert.equal(curve.match(/class="datum"/g)?.length, 2);
  assert.ok(!curve.includes('NaN'));
  const timeline = renderChart({
    type: 'timeline',
    title: 'ops',
    unit: 'operations/s',
    series: [{ name: 'writes/s', values: [5, 0, 7] }],
    markers: [{ t: 1.2, label: 'kill -9 s0n0' }],
  });
  assert.equal(timeline.match(/class="datum"/g)?.length, 1);
  assert.ok(timeline.includes('kill -9 s0n0'));
  assert.equal(escapeXml(`"'`), '&quot;&apos;');
});
