import { test } from 'node:test';
import assert from 'node:assert/strict';
import { intersects, layoutHeader, layoutMarkerLabels, textWidth } from './layout.js';
import type { Box } from './layout.js';

const AREA = { left: 64, right: 700, top: 30 };

function noneIntersect(boxes: readonly Box[]): void {
  for (let i = 0; i < boxes.length; i++)
    for (let j = i + 1; j < boxes.length; j++)
      assert.ok(
        !intersects(boxes[i]!, boxes[j]!),
        `boxes ${i} and ${j} intersect: ${JSON.stringify([boxes[i], boxes[j]])}`,
      );
}

function inside(boxes: readonly Box[], left: number, right: number): void {
  for (const b of boxes) assert.ok(b.x >= left - 1e-9 && b.x + b.w <= right + 1e-9, JSON.stringify(b));
}

test('intersects: overlapping boxes do, boxes that only touch or are apart do not', () => {
  const a = { x: 0, y: 0, w: 10, h: 10 };
  assert.ok(intersects(a, { x: 5, y: 5, w: 10, h: 10 }));
  assert.ok(intersects(a, { x: 2, y: 2, w: 2, h: 2 }));
  assert.ok(!intersects(a, { x: 10, y: 0, w: 5, h: 5 }));
  assert.ok(!intersects(a, { x: 0, y: 10, w: 5, h: 5 }));
  assert.ok(!intersects(a, { x: 20, y: 20, w: 5, h: 5 }));
});

test('text width grows with the text and the font, bold wider', () => {
  assert.ok(textWidth('abcd', 10) > textWidth('abc', 10));
  assert.ok(textWidth('abc', 13) > textWidth('abc', 10));
  assert.ok(textWidth('abc', 10, true) > textWidth('abc', 10));
});

test('marker labels: no two label boxes intersect, for crowded marker sets', () => {
  const failover = [
    { x: 300, label: 'kill -9 s0n0' },
    { x: 301, label: 'primary unreachable (s0n0)' },
    { x: 302, label: 'leader key expired' },
    { x: 305, label: 'promoted (s0n1)' },
    { x: 306, label: 'proxy follows s0n1' },
    { x: 420, label: 'rejoined as replica (s0n0)' },
    { x: 690, label: 'label at the right edge' },
    { x: 64, label: 'label at the left edge' },
  ];
  const sameSpot = Array.from({ length: 25 }, (_, i) => ({ x: 400, label: `event number ${i}` }));
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const random = Array.from({ length: 60 }, (_, i) => ({
    x: 64 + rnd() * 636,
    label: 'x'.repeat(1 + Math.floor(rnd() * 40)) + i,
  }));
  const tooWide = [
    { x: 200, label: 'w'.repeat(300) },
    { x: 210, label: 'short' },
  ];
  for (const set of [failover, sameSpot, random, tooWide, []]) {
    const { labels, rows } = layoutMarkerLabels(set, AREA);
    assert.equal(labels.length, set.length);
    noneIntersect(labels.map((l) => l.box));
    inside(
      labels.map((l) => l.box),
      AREA.left,
      AREA.right,
    );
    assert.equal(rows, set.length === 0 ? 0 : Math.max(...labels.map((l) => l.row)) + 1);
    for (const l of labels) assert.ok(l.box.y >= AREA.top);
  }
});

test('marker labels: apart markers share the first row, each label starts next to its line', () => {
  const { labels, rows } = layoutMarkerLabels(
    [
      { x: 100, label: 'a' },
      { x: 300, label: 'b' },
    ],
    AREA,
  );
  assert.equal(rows, 1);
  assert.ok(Math.abs(labels[0]!.box.x - 101) < 1e-9);
});

test('header: the title box and the legend boxes never intersect, legend wrapped inside the chart', () => {
  const cases: [string, string[]][] = [
    ['Operations per second, kill -9 of the primary (synchronous off)', ['writes/s', 'reads/s', 'errors/s']],
    [
      'Latency by percentile, 1,000 clients',
      ['direct to PostgreSQL', 'through the proxy', 'through PgBouncer'],
    ],
    ['short', ['a']],
    ['t'.repeat(80), Array.from({ length: 12 }, (_, i) => `series number ${i}`)],
    ['no legend', []],
  ];
  for (const [title, names] of cases) {
    const h = layoutHeader(title, names, AREA);
    assert.equal(h.items.length, names.length);
    noneIntersect([h.title, ...h.items]);
    inside([h.title, ...h.items], AREA.left, AREA.right);
    for (const b of [h.title, ...h.items]) assert.ok(b.y + b.h <= h.bottom, 'header bottom below every box');
  }
  // A short title keeps the legend on its row.
  const one = layoutHeader('short', ['a', 'b'], AREA);
  assert.ok(one.items.every((b) => b.y === one.title.y));
  // A long one pushes it below.
  const two = layoutHeader(
    'Operations per second during pgscale switchover, a long title indeed',
    ['writes/s', 'reads/s', 'errors/s'],
    AREA,
  );
  assert.ok(two.items.every((b) => b.y >= two.title.y + two.title.h));
});
