/**
 * The dashboard page's script, as plain browser JavaScript in a string (no build step): it listens
 * to GET /dashboard/events (Server-Sent Events) and, while that stream is down, polls GET
 * /dashboard/state every second. It only reads: the page has no control that changes the
 * cluster. Every value is put in the page with textContent, never as HTML.
 */
export const DASHBOARD_SCRIPT = String.raw`
'use strict';
const $ = (id) => document.getElementById(id);
const COLORS = ['#2f6fdf', '#d9822b', '#2e9e5b', '#b0419a', '#8a6d1f', '#1f8a8a', '#c23b3b', '#6b5bd6'];
const color = (g) => COLORS[Number(g) % COLORS.length];
let samples = [];
let last = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const svg = (tag, attrs) => {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
};
const bytes = (n) =>
  n === null ? '–' : n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' kB' : (n / 1048576).toFixed(1) + ' MB';
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : '');
const table = (head, rows, attrs) =>
  el('table', attrs, el('thead', {}, el('tr', {}, head.map((h) => el('th', {}, h)))), el('tbody', {}, rows));

function nodeState(n) {
  if (n.role === 'replica' && n.state === 'running') return n.streaming ? 'streaming' : 'not streaming';
  return n.state;
}

function renderGroups(s) {
  return s.groups.map((g) =>
    el('div', { class: 'card', 'data-group': g.group },
      el('h3', {}, el('span', { class: 'swatch', style: 'background:' + color(g.group) }), 'group ' + g.group,
        el('small', {}, ' leader ' + (g.leader || 'none') + (g.epoch === null ? '' : ', epoch ' + g.epoch))),
      table(['node', 'role', 'state', 'TL', 'LSN', 'lag', ''],
        g.nodes.map((n) =>
          el('tr', { 'data-node': n.name, 'data-role': n.role || 'none', class: n.role === 'primary' ? 'primary' : '' },
            el('td', {}, n.name, el('div', { class: 'dim' }, n.host + ':' + n.port)),
            el('td', {}, el('span', { class: 'badge ' + (n.role || 'none') }, n.role || '?')),
            el('td', { class: nodeState(n) === 'running' || nodeState(n) === 'streaming' ? 'ok' : 'bad' }, nodeState(n)),
            el('td', {}, n.timeline === null ? '–' : n.timeline),
            el('td', { class: 'mono' }, n.lsn || '–'),
            el('td', {}, n.role === 'replica' ? bytes(n.lag_bytes) + (n.lag_seconds ? ' / ' + n.lag_seconds.toFixed(1) + ' s' : '') : ''),
            el('td', {}, n.pending_restart ? el('span', { class: 'badge warn' }, 'pending restart') : null,
              n.sync_state && n.sync_state !== 'async' ? el('span', { class: 'badge' }, n.sync_state) : null,
              n.error ? el('div', { class: 'bad' }, n.error) : null))))));
}

function renderShards(s) {
  const m = s.shards;
  if (!m) return [el('p', { class: 'dim' }, 'no sharding catalog (the proxy is off, or it is not loaded yet)')];
  const moving = new Map();
  for (const mv of (s.moves && s.moves.moves) || [])
    if (mv.state === 'running' || mv.state === 'queued') moving.set(mv.colocation + '/' + mv.shard, mv);
  const out = [el('div', { class: 'legend' }, m.groups.map((g) =>
    el('span', { 'data-shards-of': g }, el('span', { class: 'swatch', style: 'background:' + color(g) }),
      'group ' + g + ': ' + (m.shards_per_group[g] || 0) + ' shards')))];
  const dist = m.colocations.filter((c) => c.kind === 'distributed');
  if (dist.length === 0) out.push(el('p', { class: 'dim' }, 'no distributed table yet'));
  for (const c of dist) {
    out.push(el('div', { class: 'coloc' }, el('div', { class: 'dim' }, c.tables.join(', ') + ' — ' + c.shard_count + ' shards'),
      el('div', { class: 'strip' }, c.placement.map((g, r) => {
        const mv = moving.get(c.id + '/' + r);
        return el('span', { class: 'cell' + (mv ? ' moving' : ''), title: 'shard ' + r + ' on group ' + g + (mv ? ', moving to ' + mv.to : ''),
          style: 'background:' + color(g) });
      }))));
  }
  const refs = m.colocations.filter((c) => c.kind === 'reference').flatMap((c) => c.tables);
  if (refs.length) out.push(el('p', { class: 'dim' }, 'reference tables (on every group): ' + refs.join(', ')));
  const job = s.moves;
  if (job) {
    out.push(el('h3', {}, job.kind + ' ' + job.id + ' — ' + job.state));
    out.push(table(['shard', 'table', 'from → to', 'state', 'copied'], job.moves.map((mv) =>
      el('tr', {}, el('td', {}, mv.shard_id), el('td', {}, mv.table), el('td', {}, mv.from + ' → ' + mv.to),
        el('td', {}, mv.state + (mv.step ? ' (' + mv.step + ')' : '')),
        el('td', {}, mv.source_bytes ? Math.round((100 * (mv.copied_bytes || 0)) / mv.source_bytes) + ' %' : '')))));
  } else out.push(el('p', { class: 'dim' }, 'no shard move in progress'));
  return out;
}

function renderPools(s) {
  const p = s.pools;
  if (!p) return [el('p', { class: 'dim' }, 'the proxy does not run in this controller')];
  const c = p.clients;
  return [
    el('p', {}, (p.listening ? 'listening on ' : 'NOT LISTENING on ') + (p.listen || '?') + ' · ' + (p.pool_mode || '') + ' pooling'),
    el('div', { class: 'stats' }, ['active', 'idle', 'waiting', 'login'].map((k) =>
      el('div', { class: 'stat', 'data-clients': k }, el('b', {}, c[k] || 0), 'clients ' + k))),
    table(['database', 'user', 'server', 'active', 'idle', 'waiting'], p.pools.map((x) =>
      el('tr', {}, el('td', {}, x.database), el('td', {}, x.user), el('td', { class: 'mono' }, x.server),
        el('td', {}, x.active), el('td', {}, x.idle), el('td', { class: x.waiting ? 'bad' : '' }, x.waiting)))),
  ];
}

function renderHistory(s) {
  if (!s.ha) return [el('p', { class: 'dim' }, 'high availability is off')];
  const head = el('p', {}, s.ha.paused ? el('b', { class: 'bad' }, 'automatic failover PAUSED') : 'automatic failover on',
    s.ha.store_reachable ? '' : el('b', { class: 'bad' }, ' · state store unreachable'));
  if (s.history.length === 0) return [head, el('p', { class: 'dim' }, 'no event yet')];
  return [head, table(['time', 'group', 'event', 'node', 'detail'], s.history.map((e) =>
    el('tr', {}, el('td', {}, time(e.at)), el('td', {}, e.group), el('td', {}, e.event), el('td', {}, e.node || ''),
      el('td', { class: 'dim' }, e.detail || ''))))];
}

function chart(key, unit, stroke) {
  // The window grows with the data kept, from 1 to 5 minutes.
  const W = 460, H = 150, L = 44, B = 22, now = Date.now();
  const oldest = samples.length ? now - samples[0].t : 0;
  const span = Math.min(300000, Math.max(60000, Math.ceil(oldest / 60000) * 60000));
  const step = span > 60000 ? 60000 : 15000;
  const pts = samples.filter((x) => x[key] !== null && x.t > now - span);
  const max = Math.max(1, ...pts.map((x) => x[key])) * 1.1;
  const g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img', 'aria-label': key + ' in ' + unit });
  const x = (t) => L + ((t - (now - span)) / span) * (W - L - 4);
  const y = (v) => 6 + (1 - v / max) * (H - B - 6);
  g.append(svg('line', { x1: L, y1: y(0), x2: W - 4, y2: y(0), class: 'axis' }), svg('line', { x1: L, y1: 6, x2: L, y2: y(0), class: 'axis' }));
  const label = (tx, ty, text, anchor) => { const t = svg('text', { x: tx, y: ty, 'text-anchor': anchor }); t.textContent = text; g.append(t); };
  label(L - 4, y(max / 1.1) + 4, (max / 1.1).toFixed(max < 10 ? 1 : 0), 'end');
  label(L - 4, y(0) + 4, '0', 'end');
  label(L + 2, 12, unit, 'start');
  for (let a = span; a >= 0; a -= step)
    label(x(now - a), H - 6, a === 0 ? 'now' : step === 60000 ? '−' + a / 60000 + ' min' : '−' + a / 1000 + ' s', a === 0 ? 'end' : 'middle');
  if (pts.length) g.append(svg('polyline', { points: pts.map((p) => x(p.t).toFixed(1) + ',' + y(p[key]).toFixed(1)).join(' '), fill: 'none', stroke, 'stroke-width': 1.5 }));
  const cur = pts.length ? pts[pts.length - 1][key] : null;
  const title = key === 'qps' ? 'queries per second' : 'mean statement time through the proxy';
  return el('div', {}, el('div', { class: 'dim' }, title, ': ', el('b', {}, cur === null ? '–' : cur + ' ' + unit)), g);
}

function render(s) {
  last = s;
  $('cluster').textContent = s.cluster;
  $('controller').textContent = 'controller ' + s.controller.state + ' · pid ' + s.controller.pid;
  $('groups').replaceChildren(...renderGroups(s));
  $('shards').replaceChildren(...renderShards(s));
  $('pools').replaceChildren(...renderPools(s));
  $('history').replaceChildren(...renderHistory(s));
  const bad = s.services.filter((x) => x.state !== 'running');
  $('services').textContent = bad.length ? bad.map((x) => x.name + ' ' + x.state + (x.error ? ': ' + x.error : '')).join(' · ') : '';
  $('updated').textContent = 'updated ' + time(new Date().toISOString());
  renderCharts();
}
function renderCharts() {
  $('charts').replaceChildren(
    samples.length || (last && last.pools) ? chart('qps', 'queries/s', '#2f6fdf') : el('p', { class: 'dim' }, 'no proxy: no throughput to show'),
    samples.length || (last && last.pools) ? chart('query_ms', 'ms', '#d9822b') : '');
}
function onState(s) {
  if (s.samples) samples = s.samples;
  render(s);
}

let pollTimer = null;
function setLink(text, ok) {
  $('link').textContent = text;
  $('link').className = ok ? 'ok' : 'bad';
}
async function poll() {
  try {
    const r = await fetch('/dashboard/state', { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    onState(await r.json());
    setLink('polling', true);
  } catch {
    setLink('controller unreachable', false);
  }
}
function startPolling() {
  if (pollTimer === null) pollTimer = setInterval(poll, 1000);
}
function connect() {
  const es = new EventSource('/dashboard/events');
  es.addEventListener('state', (e) => {
    onState(JSON.parse(e.data));
    setLink('live', true);
    if (pollTimer !== null) { clearInterval(pollTimer); pollTimer = null; }
  });
  es.addEventListener('sample', (e) => {
    samples.push(JSON.parse(e.data));
    if (samples.length > 300) samples.shift();
    renderCharts();
  });
  es.onerror = () => { setLink('reconnecting…', false); startPolling(); };
}
connect();
`;
