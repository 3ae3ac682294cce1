/**
 * Where the report's chart texts go, so that none covers another: the title and the legend
 * (the legend beside the title when both fit on one line, else on rows below it, wrapped), and
 * the labels of a timeline's markers (each in the first row of a band above the plot where its
 * box meets no other label's, to the right of its line or, failing that, to its left). Pure
 * geometry on estimated text widths — there is no font metric in a static SVG — with estimates
 * on the wide side (0.6 em per character, 0.65 em in bold) so that real text fits its box.
 */

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Estimated width in px of `s` at `px` font size (system sans-serif, wide side). */
export function textWidth(s: string, px: number, bold = false): number {
  return [...s].length * px * (bold ? 0.65 : 0.6);
}

/** Whether two boxes overlap (touching edges do not count). */
export function intersects(a: Box, b: Box): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

export const TITLE_PX = 13;
export const LEGEND_PX = 11;
export const MARKER_PX = 10;
/** A legend item: a 10 px swatch, 4 px gap, the name. */
const SWATCH = 14;
const ITEM_GAP = 12;
const ROW = 16;

export interface HeaderLayout {
  /** The title as drawn: shortened with … when wider than the chart. */
  text: string;
  /** The title's box; its baseline is at box.y + 12. */
  title: Box;
  /** One box per legend name (swatch included), in the order given. */
  items: Box[];
  /** y below the header's last row. */
  bottom: number;
}

/**
 * The title at (left, top) and the legend right-aligned on the same row when it fits beside the
 * title, else left-aligned on rows below it, wrapped at `right`.
 */
export function layoutHeader(
  title: string,
  names: readonly string[],
  area: { left: number; right: number; top: number },
): HeaderLayout {
  let text = title;
  while (text.length > 1 && area.left + textWidth(text, TITLE_PX, true) > area.right)
    text = `${text.slice(0, -2)}…`;
  const t: Box = { x: area.left, y: area.top, w: textWidth(text, TITLE_PX, true), h: ROW };
  const widths = names.map((n) => SWATCH + textWidth(n, LEGEND_PX));
  const total = widths.reduce((a, b) => a + b, 0) + ITEM_GAP * Math.max(0, names.length - 1);
  const items: Box[] = [];
  if (names.length === 0) return { text, title: t, items, bottom: area.top + ROW };
  if (area.right - total >= t.x + t.w + ITEM_GAP * 2) {
    let x = area.right - total;
    for (const w of widths) {
      items.push({ x, y: area.top, w, h: ROW });
      x += w + ITEM_GAP;
    }
    return { text, title: t, items, bottom: area.top + ROW };
  }
  let x = area.left;
  let y = area.top + ROW + 2;
  for (const w of widths) {
    if (x > area.left && x + w > area.right) {
      x = area.left;
      y += ROW;
    }
    items.push({ x, y, w, h: ROW });
    x += w + ITEM_GAP;
  }
  return { text, title: t, items, bottom: y + ROW };
}

export interface PlacedLabel {
  /** The label as drawn (shortened with … when wider than the plot). */
  text: string;
  /** Where the text starts and its baseline. */
  x: number;
  baseline: number;
  box: Box;
  row: number;
}

/**
 * Labels of vertical markers at x positions `xs` in a band starting at `top` between `left`
 * and `right`: each in the lowest-numbered row where its box meets no placed box, right of its
 * line if it fits there, else left of it. Returns them in the input order, and the rows used.
 */
export function layoutMarkerLabels(
  markers: readonly { x: number; label: string }[],
  area: { left: number; right: number; top: number },
): { labels: PlacedLabel[]; rows: number } {
  const h = MARKER_PX + 3;
  const maxW = area.right - area.left;
  const order = markers.map((m, i) => ({ ...m, i })).sort((a, b) => a.x - b.x);
  const placed: PlacedLabel[] = [];
  const out: PlacedLabel[] = new Array<PlacedLabel>(markers.length);
  let rows = 0;
  for (const m of order) {
    let text = m.label;
    while (text.length > 1 && textWidth(text, MARKER_PX) + 4 > maxW) text = `${text.slice(0, -2)}…`;
    const w = textWidth(text, MARKER_PX) + 4;
    const clamp = (x: number) => Math.min(Math.max(x, area.left), area.right - w);
    const candidates = [clamp(m.x + 1), clamp(m.x - 1 - w)];
    let done: PlacedLabel | null = null;
    for (let row = 0; done === null; row++) {
      const y = area.top + row * h;
      for (const x of candidates) {
        const box = { x, y, w, h };
        if (!placed.some((p) => intersects(p.box, box))) {
          done = { text, x: x + 2, baseline: y + MARKER_PX, box, row };
          break;
        }
      }
    }
    placed.push(done);
    out[m.i] = done;
    rows = Math.max(rows, done.row + 1);
  }
  return { labels: out, rows };
}

/** Height of `rows` rows of marker labels. */
export function markerBandHeight(rows: number): number {
  return rows * (MARKER_PX + 3);
}
