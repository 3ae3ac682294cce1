/**
 * The report's charts as inline SVG, drawn here rather than by a chart library, so that the
 * report is one self-contained file that opens offline. Three kinds: bars (throughput by
 * configuration), a latency-by-percentile curve (x spaced by "nines", y logarithmic), and a
 * per-second timeline with vertical markers (faults and HA events). Every element that carries
 * data has the class `datum`, which the browser test counts.
 */
import type { BarChart, Chart, PercentileChart, TimelineChart } from '../scenario.js';

const W = 720;
const H = 300;
const M = { top: 28, right: 20, bottom: 48, left: 64 };
const COLOURS = ['#2f6fd0', '#e07b00', '#c0392b', '#27ae60', '#8e44ad'];

export function escapeXml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]!};`,
  );
}

const f = (n: number) => (Number.isFinite(n) ? Number(n.toFixed(1)) : 0);

/** About five round tick values from 0 to at least max. */
export function niceTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmtTick(v: number): string {
  if (v >= 10_000) return `${Number((v / 1000).toPrecision(3))}k`;
  if (v >= 1) return String(Number(v.toPrecision(4)));
  return String(Number(v.toPrecision(2)));
}

function frame(kind: string, title: string, body: string, legend = ''): string {
  return (
    `<svg class="chart" data-chart="${kind}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" ` +
    `role="img" aria-label="${escapeXml(title)}">` +
    `<title>${escapeXml(title)}</title>` +
    `<text x="${M.left}" y="18" class="chart-title">${escapeXml(title)}</text>` +
    body +
    legend +
    `</svg>`
  );
}

function legendOf(names: readonly string[]): string {
  let x = W - M.right;
  const items: string[] = [];
  for (let i = names.length - 1; i >= 0; i--) {
    const name = names[i]!;
    const w = 18 + name.length * 6.6;
    x -= w;
    items.push(
      `<rect x="${f(x)}" y="9" width="10" height="10" fill="${COLOURS[i % COLOURS.length]}"/>` +
        `<text x="${f(x + 14)}" y="18" class="legend">${escapeXml(name)}</text>`,
    );
  }
  return items.join('');
}

function yAxis(ticks: readonly number[], y: (v: number) => number, label: string): string {
  const lines = ticks
    .map(
      (t) =>
        `<line x1="${M.left}" x2="${W - M.right}" y1="${f(y(t))}" y2="${f(y(t))}" class="grid"/>` +
        `<text x="${M.left - 6}" y="${f(y(t) + 4)}" text-anchor="end" class="tick">${fmtTick(t)}</text>`,
    )
    .join('');
  return (
    lines +
    `<text transform="translate(14 ${f((M.top + H - M.bottom) / 2)}) rotate(-90)" text-anchor="middle" class="axis-label">${escapeXml(label)}</text>`
  );
}

function bars(c: BarChart): string {
  const max = Math.max(...c.bars.map((b) => b.value), 0);
  const ticks = niceTicks(max * 1.1);
  const top = ticks[ticks.length - 1]!;
  const y = (v: number) => H - M.bottom - (v / top) * (H - M.top - M.bottom);
  const slot = (W - M.left - M.right) / Math.max(1, c.bars.length);
  const bw = Math.min(120, slot * 0.6);
  const body = c.bars
    .map((b, i) => {
      const x = M.left + slot * i + (slot - bw) / 2;
      const yy = y(b.value);
      return (
        `<rect class="datum" x="${f(x)}" y="${f(yy)}" width="${f(bw)}" height="${f(H - M.bottom - yy)}" fill="${COLOURS[0]}"><title>${escapeXml(`${b.label}: ${b.note ?? b.value}`)}</title></rect>` +
        (b.note
          ? `<text x="${f(x + bw / 2)}" y="${f(yy - 6)}" text-anchor="middle" class="bar-note">${escapeXml(b.note)}</text>`
          : '') +
        `<text x="${f(x + bw / 2)}" y="${H - M.bottom + 18}" text-anchor="middle" class="tick">${escapeXml(b.label)}</text>`
      );
    })
    .join('');
  return frame('bars', c.title, yAxis(ticks, y, c.unit) + body);
}

/** x position of a percentile: evenly spaced in "nines" (50 → 1, 90 → 2, 99 → 3 …). */
function nines(p: number): number {
  return -Math.log10(Math.max(1e-5, 1 - p / 100));
}

function percentiles(c: PercentileChart): string {
  const pts = c.series.flatMap((s) => s.points);
  const maxP = Math.max(...pts.map((p) => Math.min(p.p, 99.99)), 99);
  const xmax = nines(maxP);
  const minMs = Math.max(0.01, Math.min(...pts.map((p) => p.ms).filter((v) => v > 0)));
  const maxMs = Math.max(...pts.map((p) => p.ms), minMs * 10);
  const lo = Math.floor(Math.log10(minMs));
  const hi = Math.ceil(Math.log10(maxMs));
  const x = (p: number) => M.left + (nines(Math.min(p, maxP)) / xmax) * (W - M.left - M.right);
  const y = (v: number) =>
    H - M.bottom - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / Math.max(1, hi - lo)) * (H - M.top - M.bottom);
  const yt = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
  const xt = [0, 90, 99, 99.9, 99.99].filter((p) => p <= maxP);
  const axis =
    yAxis(yt, y, 'latency, ms (log scale)') +
    xt
      .map(
        (p) =>
          `<line x1="${f(x(p))}" x2="${f(x(p))}" y1="${M.top}" y2="${H - M.bottom}" class="grid"/>` +
          `<text x="${f(x(p))}" y="${H - M.bottom + 18}" text-anchor="middle" class="tick">p${p}</text>`,
      )
      .join('') +
    `<text x="${f((M.left + W - M.right) / 2)}" y="${H - 8}" text-anchor="middle" class="axis-label">percentile</text>`;
  const lines = c.series
    .map((s, i) => {
      const shown = s.points.filter((p) => p.p <= maxP);
      if (shown.length === 0) return '';
      const d = shown.map((p, j) => `${j ? 'L' : 'M'}${f(x(p.p))},${f(y(p.ms))}`).join(' ');
      return `<path class="datum" d="${d}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2.5"><title>${escapeXml(s.name)}</title></path>`;
    })
    .join('');
  return frame('percentiles', c.title, axis + lines, legendOf(c.series.map((s) => s.name)));
}

function timeline(c: TimelineChart): string {
  const n = Math.max(1, ...c.series.map((s) => s.values.length));
  const max = Math.max(0, ...c.series.flatMap((s) => s.values));
  const ticks = niceTicks(max * 1.05);
  const top = ticks[ticks.length - 1]!;
  const x = (t: number) => M.left + (t / n) * (W - M.left - M.right);
  const y = (v: number) => H - M.bottom - (v / top) * (H - M.top - M.bottom);
  const xt = niceTicks(n).filter((t) => t <= n);
  const axis =
    yAxis(ticks, y, c.unit) +
    xt
      .map(
        (t) => `<text x="${f(x(t))}" y="${H - M.bottom + 18}" text-anchor="middle" class="tick">${t}</text>`,
      )
      .join('') +
    `<text x="${f((M.left + W - M.right) / 2)}" y="${H - 8}" text-anchor="middle" class="axis-label">seconds</text>`;
  const lines = c.series
    .map((s, i) => {
      if (s.values.length === 0) return '';
      // Each value is the count of the second [t, t+1): drawn at its middle.
      const d = s.values.map((v, t) => `${t ? 'L' : 'M'}${f(x(t + 0.5))},${f(y(v))}`).join(' ');
      return `<path class="datum" d="${d}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2"><title>${escapeXml(s.name)}</title></path>`;
    })
    .join('');
  const marks = c.markers
    .filter((m) => m.t >= 0 && m.t <= n)
    .map(
      (m, i) =>
        `<line class="marker" x1="${f(x(m.t))}" x2="${f(x(m.t))}" y1="${M.top}" y2="${H - M.bottom}"/>` +
        `<text x="${f(x(m.t) + 3)}" y="${M.top + 12 + (i % 3) * 12}" class="marker-label">${escapeXml(m.label)}</text>`,
    )
    .join('');
  return frame('timeline', c.title, axis + lines + marks, legendOf(c.series.map((s) => s.name)));
}

export function renderChart(c: Chart): string {
  switch (c.type) {
    case 'bars':
      return bars(c);
    case 'percentiles':
      return percentiles(c);
    case 'timeline':
      return timeline(c);
  }
}
