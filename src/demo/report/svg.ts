/**
 * The report's charts as inline SVG, drawn here rather than by a chart library, so that the
 * report is one self-contained file that opens offline. Three kinds: bars (throughput by
 * configuration), a latency-by-percentile curve (x spaced by "nines", y logarithmic), and a
 * timeline of rates per bucket (100 ms in the demo) with vertical markers (faults, HA events,
 * shard moves). Both axes of every chart are drawn and labelled with their unit; titles, legends
 * and marker labels are placed by ./layout.ts so that none overlaps another. Every element that
 * carries data has the class `datum`, which the browser test counts.
 */
import type { BarChart, Chart, PercentileChart, TimelineChart } from '../scenario.js';
import { layoutHeader, layoutMarkerLabels, markerBandHeight } from './layout.js';

const W = 720;
/** Height of the plot area itself; the header and the marker band add to it. */
const PLOT_H = 224;
const M = { top: 8, right: 20, bottom: 48, left: 64 };
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

/** Where a chart's plot area is: below its header (and marker band), PLOT_H high. */
interface Frame {
  /** Top and bottom of the plot area. */
  top: number;
  bottom: number;
  height: number;
  header: string;
}

/** The title and the legend, laid out so that they never overlap; `band` px reserved below. */
function header(title: string, names: readonly string[], band = 0): Frame {
  const h = layoutHeader(title, names, { left: M.left, right: W - M.right, top: M.top });
  const legend = h.items
    .map((b, i) => {
      const name = names[i]!;
      return (
        `<rect class="legend-swatch" x="${f(b.x)}" y="${f(b.y + 3)}" width="10" height="10" fill="${COLOURS[i % COLOURS.length]}"/>` +
        `<text x="${f(b.x + 14)}" y="${f(b.y + 12)}" class="legend">${escapeXml(name)}</text>`
      );
    })
    .join('');
  const top = h.bottom + band + 8;
  const bottom = top + PLOT_H;
  return {
    top,
    bottom,
    height: bottom + M.bottom,
    header: `<text x="${f(h.title.x)}" y="${f(h.title.y + 12)}" class="chart-title">${escapeXml(h.text)}</text>${legend}`,
  };
}

function svg(kind: string, title: string, fr: Frame, body: string): string {
  return (
    `<svg class="chart" data-chart="${kind}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${f(fr.height)}" ` +
    `role="img" aria-label="${escapeXml(title)}">` +
    `<title>${escapeXml(title)}</title>` +
    fr.header +
    body +
    `</svg>`
  );
}

/** Both axes' lines and the x axis's label (the y axis's is drawn by yAxis). */
function xAxis(fr: Frame, label: string): string {
  return (
    `<line class="axis" x1="${M.left}" x2="${W - M.right}" y1="${fr.bottom}" y2="${fr.bottom}"/>` +
    `<line class="axis" x1="${M.left}" x2="${M.left}" y1="${fr.top}" y2="${fr.bottom}"/>` +
    `<text x="${f((M.left + W - M.right) / 2)}" y="${f(fr.height - 8)}" text-anchor="middle" class="axis-label" data-axis="x">${escapeXml(label)}</text>`
  );
}

function yAxis(fr: Frame, ticks: readonly number[], y: (v: number) => number, label: string): string {
  const lines = ticks
    .map(
      (t) =>
        `<line x1="${M.left}" x2="${W - M.right}" y1="${f(y(t))}" y2="${f(y(t))}" class="grid"/>` +
        `<text x="${M.left - 6}" y="${f(y(t) + 4)}" text-anchor="end" class="tick">${fmtTick(t)}</text>`,
    )
    .join('');
  return (
    lines +
    `<text transform="translate(14 ${f((fr.top + fr.bottom) / 2)}) rotate(-90)" text-anchor="middle" class="axis-label" data-axis="y">${escapeXml(label)}</text>`
  );
}

/** A linear y scale from 0 to the last tick over the plot area. */
function linearY(fr: Frame, top: number): (v: number) => number {
  return (v: number) => fr.bottom - (v / top) * (fr.bottom - fr.top);
}

function bars(c: BarChart): string {
  const fr = header(c.title, []);
  const max = Math.max(...c.bars.map((b) => b.value), 0);
  const ticks = niceTicks(max * 1.1);
  const y = linearY(fr, ticks[ticks.length - 1]!);
  const slot = (W - M.left - M.right) / Math.max(1, c.bars.length);
  const bw = Math.min(120, slot * 0.6);
  const body = c.bars
    .map((b, i) => {
      const x = M.left + slot * i + (slot - bw) / 2;
      const yy = y(b.value);
      return (
        `<rect class="datum" x="${f(x)}" y="${f(yy)}" width="${f(bw)}" height="${f(fr.bottom - yy)}" fill="${COLOURS[0]}"><title>${escapeXml(`${b.label}: ${b.note ?? b.value}`)}</title></rect>` +
        (b.note
          ? `<text x="${f(x + bw / 2)}" y="${f(yy - 6)}" text-anchor="middle" class="bar-note">${escapeXml(b.note)}</text>`
          : '') +
        `<text x="${f(x + bw / 2)}" y="${fr.bottom + 18}" text-anchor="middle" class="tick">${escapeXml(b.label)}</text>`
      );
    })
    .join('');
  return svg(
    'bars',
    c.title,
    fr,
    yAxis(fr, ticks, y, c.unit) + xAxis(fr, c.xLabel ?? 'configuration') + body,
  );
}

/** x position of a percentile: evenly spaced in "nines" (50 → 1, 90 → 2, 99 → 3 …). */
function nines(p: number): number {
  return -Math.log10(Math.max(1e-5, 1 - p / 100));
}

function percentiles(c: PercentileChart): string {
  const fr = header(
    c.title,
    c.series.map((s) => s.name),
  );
  const pts = c.series.flatMap((s) => s.points);
  const maxP = Math.max(...pts.map((p) => Math.min(p.p, 99.99)), 99);
  const xmax = nines(maxP);
  const minMs = Math.max(0.01, Math.min(...pts.map((p) => p.ms).filter((v) => v > 0)));
  const maxMs = Math.max(...pts.map((p) => p.ms), minMs * 10);
  const lo = Math.floor(Math.log10(minMs));
  const hi = Math.ceil(Math.log10(maxMs));
  const x = (p: number) => M.left + (nines(Math.min(p, maxP)) / xmax) * (W - M.left - M.right);
  const y = (v: number) =>
    fr.bottom - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / Math.max(1, hi - lo)) * (fr.bottom - fr.top);
  const yt = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
  const xt = [0, 90, 99, 99.9, 99.99].filter((p) => p <= maxP);
  const axis =
    yAxis(fr, yt, y, 'latency, ms (log scale)') +
    xt
      .map(
        (p) =>
          `<line x1="${f(x(p))}" x2="${f(x(p))}" y1="${fr.top}" y2="${fr.bottom}" class="grid"/>` +
          `<text x="${f(x(p))}" y="${fr.bottom + 18}" text-anchor="middle" class="tick">p${p}</text>`,
      )
      .join('') +
    xAxis(fr, 'percentile (share of requests at or below the latency)');
  const lines = c.series
    .map((s, i) => {
      const shown = s.points.filter((p) => p.p <= maxP);
      if (shown.length === 0) return '';
      const d = shown.map((p, j) => `${j ? 'L' : 'M'}${f(x(p.p))},${f(y(p.ms))}`).join(' ');
      return `<path class="datum" d="${d}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2.5"><title>${escapeXml(s.name)}</title></path>`;
    })
    .join('');
  return svg('percentiles', c.title, fr, axis + lines);
}

/** The x axis's label of a timeline: seconds, and how wide a bucket is. */
function bucketText(s: number): string {
  return s >= 1 ? `${Number(s.toPrecision(3))} s` : `${Math.round(s * 1000)} ms`;
}

function timeline(c: TimelineChart): string {
  const n = Math.max(1, ...c.series.map((s) => s.values.length));
  const span = n * c.bucketSeconds;
  const x = (t: number) => M.left + (t / span) * (W - M.left - M.right);
  const shown = c.markers.filter((m) => m.t >= 0 && m.t <= span);
  // Marker labels go in a band between the header and the plot: laid out first, since the band's
  // height depends on how many rows they need.
  const probe = layoutMarkerLabels(
    shown.map((m) => ({ x: x(m.t), label: m.label })),
    { left: M.left, right: W - M.right, top: 0 },
  );
  const band = markerBandHeight(probe.rows);
  const fr = header(
    c.title,
    c.series.map((s) => s.name),
    band,
  );
  const bandTop = fr.top - 8 - band + 4;
  const max = Math.max(0, ...c.series.flatMap((s) => s.values));
  const ticks = niceTicks(max * 1.05);
  const y = linearY(fr, ticks[ticks.length - 1]!);
  const xt = niceTicks(span).filter((t) => t <= span);
  const axis =
    yAxis(fr, ticks, y, c.unit) +
    xt
      .map((t) => `<text x="${f(x(t))}" y="${fr.bottom + 18}" text-anchor="middle" class="tick">${t}</text>`)
      .join('') +
    xAxis(fr, `seconds since the load started (buckets of ${bucketText(c.bucketSeconds)})`);
  const lines = c.series
    .map((s, i) => {
      if (s.values.length === 0) return '';
      // Each value is the rate of the bucket [i, i+1): drawn at its middle.
      const d = s.values
        .map((v, i) => `${i ? 'L' : 'M'}${f(x((i + 0.5) * c.bucketSeconds))},${f(y(v))}`)
        .join(' ');
      return `<path class="datum" d="${d}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="1.5"><title>${escapeXml(s.name)}</title></path>`;
    })
    .join('');
  const marks = shown
    .map((m, i) => {
      const l = probe.labels[i]!;
      return (
        `<line class="marker" x1="${f(x(m.t))}" x2="${f(x(m.t))}" y1="${f(bandTop + l.box.y)}" y2="${fr.bottom}"/>` +
        `<text x="${f(l.x)}" y="${f(bandTop + l.baseline)}" class="marker-label">${escapeXml(l.text)}</text>`
      );
    })
    .join('');
  return svg('timeline', c.title, fr, axis + lines + marks);
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
