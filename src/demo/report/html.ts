/**
 * The demo's report: `index.html`, one self-contained page (inline CSS and SVG, no script, no
 * font, nothing fetched) with the environment, then per scenario its conclusion, charts, table
 * and caveats; and `results.json` beside it with every raw figure and the environment.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Timing } from '../phases.js';
import { timingLine } from '../phases.js';
import type { ScenarioResult } from '../scenario.js';
import { fmtValue, rangeText } from '../repeat.js';
import { escapeXml, renderChart } from './svg.js';

export interface Environment {
  date: string;
  pgscale: string;
  command: string;
  mode: 'quick' | 'full';
  host: {
    cpu: string;
    cores: number;
    memoryGb: number;
    os: string;
    kernel: string;
    /** 1-minute load average before the demo started anything: other programs' demand. */
    loadAtStart: number;
  };
  node: string;
  postgres: { version: string; source: string };
  caps: {
    applied: boolean;
    /** CPU per node, in cores (quota / period), when applied. */
    coresPerNode: number | null;
    /** Why not, when not. */
    reason: string | null;
    /** What that means for the figures, in one sentence. */
    meaning: string;
  };
}

export interface DemoReport {
  environment: Environment;
  seconds: number;
  scenarios: ScenarioResult[];
  /** Where the time went (phases, load average, CPU time); the report's own writing is not in it. */
  timing?: Timing;
}

const CSS = `
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;max-width:960px;margin:2rem auto;padding:0 1rem;background:#fbfcfe}
h1{font-size:1.7rem;margin:0 0 .2rem}h2{font-size:1.25rem;margin:0 0 .4rem}
.sub{color:#5a6273;margin:0 0 1.2rem}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:1rem 1.2rem;margin:1rem 0}
.status{font-size:.8rem;font-weight:600;padding:.1rem .5rem;border-radius:4px;margin-left:.5rem;vertical-align:middle}
.ok{background:#e3f4e8;color:#1d6b35}.skipped{background:#fff3d6;color:#7a5300}.failed{background:#fde2e0;color:#9b1c13}
.conclusion{font-size:1.05rem;font-weight:500;margin:.3rem 0 .8rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0;width:100%}
th,td{border-bottom:1px solid #e6e9ef;padding:.25rem .5rem;text-align:left;vertical-align:top}th{color:#5a6273;font-weight:600}
.env td:first-child{color:#5a6273;width:11rem}
.note{color:#6b5200;background:#fffaeb;border-left:3px solid #e0b000;padding:.3rem .6rem;margin:.4rem 0;font-size:.9rem}
svg.chart{width:100%;height:auto;display:block;margin:.5rem 0}
.chart-title{font-size:13px;font-weight:600;fill:#1d2330}.tick,.legend,.bar-note{font-size:11px;fill:#4a5263}
.axis-label{font-size:11px;fill:#5a6273}.grid{stroke:#e8ebf0;stroke-width:1}
.axis{stroke:#8a93a3;stroke-width:1}.marker{stroke:#555;stroke-dasharray:4 3}.marker-label{font-size:10px;fill:#333}
.spread-title{font-size:.9rem;color:#5a6273;margin:.8rem 0 0}
footer{color:#5a6273;font-size:.85rem;margin-top:2rem}
code{background:#eef1f6;padding:0 .25rem;border-radius:3px}
`;

const esc = escapeXml;

function table(headers: readonly string[], rows: readonly (readonly (string | number | null)[])[]): string {
  return (
    `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>` +
    rows
      .map((r) => `<tr>${r.map((c) => `<td>${c === null ? '–' : esc(String(c))}</td>`).join('')}</tr>`)
      .join('') +
    `</tbody></table>`
  );
}

function scenarioSection(s: ScenarioResult, index: number): string {
  const parts = [
    `<section id="${esc(s.id)}" class="scenario" data-status="${s.status}">`,
    `<h2>${index + 1}. ${esc(s.title)}<span class="status ${s.status}">${s.status}</span></h2>`,
  ];
  if (s.status === 'skipped') parts.push(`<p class="conclusion">Skipped: ${esc(s.reason ?? '')}</p>`);
  else if (s.status === 'failed') parts.push(`<p class="conclusion">Failed: ${esc(s.reason ?? '')}</p>`);
  else if (s.conclusion) parts.push(`<p class="conclusion">${esc(s.conclusion)}</p>`);
  for (const c of s.charts ?? []) parts.push(renderChart(c));
  if (s.table) parts.push(table(s.table.headers, s.table.rows));
  if (s.spread && s.runs)
    parts.push(
      `<p class="spread-title">Spread over ${s.runs} runs (the conclusion, chart and table above are run 1's):</p>` +
        table(
          ['figure', 'unit', ...Array.from({ length: s.runs }, (_, i) => `run ${i + 1}`), 'min–max'],
          s.spread.map((r) => [
            r.name,
            r.unit,
            ...r.values.map((v) => (v === null ? null : fmtValue(v))),
            rangeText(r),
          ]),
        ).replace('<table>', '<table class="spread">'),
    );
  for (const n of s.notes ?? []) parts.push(`<p class="note">${esc(n)}</p>`);
  parts.push(`<p class="sub">${s.seconds.toFixed(0)} s</p></section>`);
  return parts.join('\n');
}

export function renderHtml(r: DemoReport): string {
  const e = r.environment;
  const env = table(
    ['', ''],
    [
      ['date', e.date],
      ['run', `${e.command} (${e.mode}, ${r.seconds.toFixed(0)} s)`],
      [
        'machine',
        `${e.host.cpu}, ${e.host.cores} cores, ${e.host.memoryGb} GB, ${e.host.os} ${e.host.kernel}; ` +
          `load average ${e.host.loadAtStart.toFixed(2)} when the demo started`,
      ],
      ['PostgreSQL', `${e.postgres.version} (${e.postgres.source})`],
      ['Node.js / pgscale', `${e.node} / ${e.pgscale}`],
      [
        'CPU caps',
        e.caps.applied
          ? `each node capped at ${e.caps.coresPerNode} core (cgroup cpu controller). ${e.caps.meaning}`
          : `none: ${e.caps.reason ?? ''}. ${e.caps.meaning}`,
      ],
      ...(r.timing ? [['timing', timingLine(r.timing).replace(/^Timing: /, '')]] : []),
    ],
  ).replace('<table>', '<table class="env">');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pgscale demo report</title>
<style>${CSS}</style>
</head>
<body>
<h1>pgscale demo</h1>
<p class="sub">A primary and two streaming replicas on this machine, then groups of one primary each for sharding, measured in one run; every number below comes from this run.</p>
${env}
${r.scenarios.map(scenarioSection).join('\n')}
<footer>Raw figures: <code>results.json</code> beside this file. Reproduce with <code>npx pgscale demo${e.mode === 'quick' ? ' --quick' : ''}</code>; see docs/demo.md for how to read this report.</footer>
</body>
</html>
`;
}

/** Writes index.html and results.json into `dir` (created); returns their paths. */
export function writeReport(dir: string, r: DemoReport): { html: string; json: string } {
  mkdirSync(dir, { recursive: true });
  const html = join(dir, 'index.html');
  const json = join(dir, 'results.json');
  writeFileSync(html, renderHtml(r));
  writeFileSync(json, JSON.stringify(r, null, 2) + '\n');
  return { html, json };
}
