import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeXml, niceTicks, renderChart } from './svg.js';
import { intersects, LEGEND_PX, MARKER_PX, TITLE_PX, textWidth } from './layout.js';
import type { Box } from './layout.js';
import type { Chart } from '../scenario.js';

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
    bucketSeconds: 0.1,
    series: [{ name: 'writes/s', values: [5, 0, 7] }],
    markers: [{ t: 0.12, label: 'kill -9 s0n0' }],
  });
  assert.equal(timeline.match(/class="datum"/g)?.length, 1);
  assert.ok(timeline.includes('kill -9 s0n0'));
  assert.equal(escapeXml(`"'`), '&quot;&apos;');
});

const unescape = (s: string) =>
  s.replace(
    /&(amp|lt|gt|quot|apos);/g,
    (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!,
  );

/** The boxes of the texts of one class in a rendered chart (x, baseline → box by the estimate). */
function textBoxes(svg: string, cls: string, px: number, bold = false): Box[] {
  const re = new RegExp(`<text x="([\\d.-]+)" y="([\\d.-]+)" class="${cls}">([^<]*)</text>`, 'g');
  return [...svg.matchAll(re)].map((m) => ({
    x: Number(m[1]),
    y: Number(m[2]) - px,
    w: textWidth(unescape(m[3]!), px, bold),
    h: px + 2,
  }));
}

const crowded: Chart = {
  type: 'timeline',
  title: 'Operations per second, kill -9 of the primary (synchronous off), a title long enough to wrap',
  unit: 'operations/s',
  bucketSeconds: 0.1,
  series: ['writes/s', 'reads/s', 'errors/s'].map((name, k) => ({
    name,
    values: Array.from({ length: 120 }, (_, i) => (i > 50 && i < 60 ? 0 : 1000 * (k + 1))),
  })),
  markers: [
    { t: 5.0, label: 'kill -9 s0n0' },
    { t: 5.05, label: 'primary unreachable (s0n0)' },
    { t: 5.1, label: 'leader key expired' },
    { t: 5.9, label: 'promoted (s0n1)' },
    { t: 6.0, label: 'proxy follows the new primary s0n1' },
    { t: 9.5, label: 'rejoined as a replica (s0n0)' },
    { t: 11.9, label: 'end' },
  ],
};

test('a crowded timeline: no two marker labels intersect, nor the title and legend', () => {
  const svg = renderChart(crowded);
  const labels = textBoxes(svg, 'marker-label', MARKER_PX);
  assert.equal(labels.length, 7);
  for (let i = 0; i < labels.length; i++)
    for (let j = i + 1; j < labels.length; j++)
      assert.ok(
        !intersects(labels[i]!, labels[j]!),
        `labels ${i} and ${j}: ${JSON.stringify([labels[i], labels[j]])}`,
      );
  const title = textBoxes(svg, 'chart-title', TITLE_PX, true);
  const legend = textBoxes(svg, 'legend', LEGEND_PX);
  assert.equal(title.length, 1);
  assert.equal(legend.length, 3);
  for (const l of legend) assert.ok(!intersects(title[0]!, l), JSON.stringify([title[0], l]));
  // Labels stay out of the header too.
  for (const l of labels) for (const h of [...title, ...legend]) assert.ok(!intersects(l, h));
});

test('every kind of chart has both axes, each labelled with its unit', () => {
  const charts: Chart[] = [
    { type: 'bars', title: 'reads', unit: 'reads/s', bars: [{ label: 'one', value: 1 }] },
    { type: 'bars', title: 'writes', unit: 'writes/s', xLabel: 'groups', bars: [{ label: '1', value: 1 }] },
    {
      type: 'percentiles',
      title: 'latency',
      series: [
        {
          name: 'a',
          points: [
            { p: 50, ms: 1 },
            { p: 99, ms: 3 },
          ],
        },
      ],
    },
    crowded,
  ];
  for (const c of charts) {
    const svg = renderChart(c);
    const x = /class="axis-label" data-axis="x">([^<]+)</.exec(svg)?.[1];
    const y = /class="axis-label" data-axis="y">([^<]+)</.exec(svg)?.[1];
    assert.ok(x && y, `${c.title}: both axis labels`);
    assert.match(y, /\/s|ms/, `${c.title}: the y axis names its unit`);
    assert.equal(svg.match(/class="axis"/g)?.length, 2, `${c.title}: two axis lines`);
    if (c.type === 'timeline') assert.match(x, /seconds.*100 ms/);
    if (c.type === 'bars') assert.equal(x, c.xLabel ?? 'configuration');
  }
});
