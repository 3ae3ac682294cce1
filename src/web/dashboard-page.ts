/**
 * The dashboard page served at GET /dashboard: one self-contained HTML document (inline style
 * and script, system fonts, no request to anything but this controller), read-only. Its
 * Content-Security-Policy allows only that: the script by its hash, styles inline, data from
 * this origin, so a change that pulled in a CDN or a font would break the page at once.
 */
import { createHash } from 'node:crypto';
import { DASHBOARD_SCRIPT } from './dashboard-script.js';

const STYLE = `
:root { color-scheme: light; --fg: #1d232b; --dim: #6a7380; --line: #e1e5ea; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: baseline; padding: 12px 20px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
header .note { color: var(--dim); flex: 1 1 auto; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; padding: 16px 20px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 15px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 8px 0 4px; }
h3 small { font-weight: normal; color: var(--dim); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--dim); font-size: 12px; }
tr.primary td:first-child { font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 4px 10px 8px; }
.dim { color: var(--dim); font-size: 12px; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
.ok { color: #1e7a44; } .bad { color: #b3261e; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px; background: #eef0f3; margin-right: 4px; }
.badge.primary { background: #dbe8ff; color: #1c4fb3; } .badge.replica { background: #e3f4e9; color: #1e7a44; }
.badge.warn { background: #fff1d6; color: #8a5a00; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.legend { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 6px; }
.strip { display: flex; flex-wrap: wrap; gap: 2px; margin: 2px 0 8px; }
.cell { width: 14px; height: 14px; border-radius: 2px; }
.cell.moving { outline: 2px solid #1d232b; animation: blink 1s infinite alternate; }
@keyframes blink { to { opacity: 0.35; } }
.stats { display: flex; gap: 16px; margin: 6px 0 8px; }
.stat b { display: block; font-size: 20px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 24px; }
svg.chart { width: 100%; height: auto; }
svg.chart text { font-size: 10px; fill: var(--dim); }
svg.chart .axis { stroke: #b8bfc8; stroke-width: 1; }
`;

const BODY = `
<header>
  <h1>pgscale · <span id="cluster">…</span></h1>
  <span id="controller" class="dim"></span>
  <span class="note">Read-only view: nothing on this page changes the cluster (use the <code>pgscale</code> CLI).</span>
  <span id="link" class="dim">connecting…</span>
  <span id="updated" class="dim"></span>
  <span id="services" class="bad"></span>
</header>
<main>
  <section class="wide"><h2>Groups and nodes</h2><div id="groups" class="cards"></div></section>
  <section class="wide"><h2>Throughput and latency (up to the last 5 minutes, through the proxy)</h2><div id="charts" class="charts"></div></section>
  <section><h2>Pools</h2><div id="pools"></div></section>
  <section><h2>Shard map</h2><div id="shards"></div></section>
  <section><h2>HA history</h2><div id="history"></div></section>
</main>
`;

const scriptHash = createHash('sha256').update(DASHBOARD_SCRIPT, 'utf8').digest('base64');

/** The header that keeps the page to itself: no request leaves for another origin. */
export const DASHBOARD_CSP =
  `default-src 'none'; script-src 'sha256-${scriptHash}'; style-src 'unsafe-inline'; ` +
  `connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pgscale dashboard</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${DASHBOARD_SCRIPT}</script>
</body>
</html>
`;
