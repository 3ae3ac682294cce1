/**
 * `pgscale demo --quick`, as a new user runs it: it must print a summary, write a report whose
 * figures make sense, and leave nothing behind (no PostgreSQL process, no temporary directory, no
 * cgroup). Then the report is opened in a real headless browser (Debian's chromium through
 * playwright-core): every chart must have drawn data, with no console error and no network
 * request besides the file itself. PGSCALE_UPDATE_SCREENSHOT=1 saves docs/demo-report.png.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { findTool } from '../src/demo/tools.js';
import { cli, processesMentioning, repoRoot, tempDir } from './harness.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

interface Results {
  environment: { caps: { applied: boolean; reason: string | null }; postgres: { version: string } };
  timing: {
    totalSeconds: number;
    loadAverage: { start: number; end: number };
    cpuSeconds: { demo: number; nodes: number | null };
    phases: { name: string; seconds: number; parts?: { name: string; seconds: number }[] }[];
  };
  scenarios: {
    id: string;
    status: 'ok' | 'skipped' | 'failed';
    reason?: string;
    conclusion?: string;
    figures?: Record<string, unknown>;
    notes?: string[];
    table?: { headers: string[]; rows: unknown[][] };
  }[];
}

test('pgscale demo --quick: summary, report, nothing left behind; the report renders in a browser', async (t) => {
  const tmp = tempDir('pgscale-test-demo-');
  const work = tempDir('pgscale-test-demo-cwd-');
  t.after(() => {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  const r = await cli(['demo', '--quick', '--tmp-dir', tmp], {}, work);
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^Summary \(/m);
  assert.match(r.stdout, /Reads scale with replicas/);
  assert.match(r.stdout, /Removed the demo cluster/);

  // The cluster is gone: its directory (under --tmp-dir), its processes, its cgroups.
  const dir = /(\S*pgscale-demo-\d+-[a-z0-9]+)/.exec(r.stdout)?.[1];
  assert.ok(dir?.startsWith(tmp), `cluster directory under ${tmp} in:\n${r.stdout}`);
  assert.deepEqual(readdirSync(tmp), [], 'the temporary directory is empty');
  assert.deepEqual(processesMentioning(dir!), []);
  // The sharding scenarios' cluster too.
  const shardingDir = /(\S*pgscale-demo-\d+-[a-z0-9]+-sharding)/.exec(r.stdout)?.[1];
  assert.ok(shardingDir?.startsWith(tmp), `sharding cluster directory under ${tmp} in:\n${r.stdout}`);
  assert.deepEqual(processesMentioning(shardingDir!), []);
  if (existsSync('/sys/fs/cgroup/cpu'))
    for (const g of readdirSync('/sys/fs/cgroup/cpu').filter((n) => n.startsWith('pgscale-demo-'))) {
      const pid = Number(g.slice('pgscale-demo-'.length));
      assert.ok(existsSync(`/proc/${pid}`), `cgroup ${g} left behind by a finished demo`);
    }

  // The report and its figures.
  const reportDir = join(work, 'pgscale-report');
  const html = join(reportDir, 'index.html');
  const results = JSON.parse(readFileSync(join(reportDir, 'results.json'), 'utf8')) as Results;
  assert.ok(results.environment.postgres.version);
  const byId = new Map(results.scenarios.map((s) => [s.id, s]));
  assert.deepEqual(
    [...byId.keys()],
    [
      'read-scaling',
      'connections',
      'failover',
      'switchover',
      'write-scaling',
      'cross-group-query',
      'add-group',
    ],
  );

  const reads = byId.get('read-scaling')!;
  assert.equal(reads.status, 'ok', reads.reason);
  const stages = reads.figures!.stages as {
    nodes: number;
    readsPerSecond: number;
    p50Ms: number;
    p99Ms: number;
  }[];
  assert.deepEqual(
    stages.map((s) => s.nodes),
    [1, 2, 3],
  );
  for (const s of stages) {
    assert.ok(s.readsPerSecond > 0, JSON.stringify(s));
    assert.ok(s.p50Ms > 0 && s.p99Ms >= s.p50Ms, JSON.stringify(s));
  }
  const ratio = reads.figures!.ratio as number;
  assert.ok(Math.abs(ratio - stages[2]!.readsPerSecond / stages[0]!.readsPerSecond) < 1e-9);
  assert.ok(reads.conclusion?.includes(`${ratio.toFixed(2)}×`), reads.conclusion);

  // Where the time went: one line at the end, and the same in results.json.
  t.diagnostic(/^Timing: .*$/m.exec(r.stdout)?.[0] ?? 'no timing line');
  assert.match(r.stdout, /^Timing: \S+ s in all, load average [\d.]+ at the start and [\d.]+ at the end; /m);
  const phaseNames = results.timing.phases.map((p) => p.name);
  const ran = results.scenarios.filter((x) => x.status !== 'skipped').map((x) => x.id);
  assert.deepEqual(phaseNames, ['cluster start', ...ran, 'teardown']);
  assert.ok(results.timing.phases.every((p) => p.seconds > 0));
  assert.ok(results.timing.totalSeconds >= results.timing.phases.reduce((a, p) => a + p.seconds, 0) - 1);
  assert.deepEqual(
    results.timing.phases.find((p) => p.name === 'read-scaling')?.parts?.map((p) => p.name),
    ['warm caches, start proxies', 'primary alone', 'proxy + 1 replica', 'proxy + 2 replicas'],
  );
  assert.ok(results.timing.cpuSeconds.demo > 0);

  const conns = byId.get('connections')!;
  assert.equal(conns.status, 'ok', conns.reason);
  // PgBouncer, when installed, ran the same clients beside direct and the proxy; else one line says so.
  const bouncer = conns.figures!.pgbouncer as {
    clients: number;
    connected: number;
    readsPerSecond: number;
    serverConnections: number;
  } | null;
  if (findTool('pgbouncer').path) {
    assert.ok(bouncer, 'pgbouncer figures');
    assert.equal(bouncer.connected, bouncer.clients);
    assert.ok(bouncer.readsPerSecond > 0);
    assert.ok(bouncer.serverConnections <= (conns.figures!.poolSize as number) + 2, JSON.stringify(bouncer));
    assert.deepEqual(
      conns.table!.rows.map((row) => row[0]),
      ['direct to PostgreSQL', 'through the proxy', 'through PgBouncer'],
    );
    assert.match(conns.notes!.join('\n'), /the same clients ran through it/);
  } else {
    assert.equal(bouncer, null);
    assert.match(conns.notes!.join('\n'), /PgBouncer is not installed on this machine/);
  }
  type Target = { clients: number; connected: number; readsPerSecond: number; serverConnections: number };
  const direct = conns.figures!.direct as Target;
  const proxy = conns.figures!.proxy as Target;
  assert.equal(direct.connected, direct.clients);
  assert.equal(proxy.connected, proxy.clients);
  assert.ok(direct.readsPerSecond > 0 && proxy.readsPerSecond > 0);
  // Every direct client is a backend; the proxy's pool holds far fewer.
  assert.ok(direct.serverConnections >= direct.clients, JSON.stringify(direct));
  assert.ok(proxy.serverConnections < proxy.clients / 2, JSON.stringify(proxy));

  for (const id of ['failover', 'switchover']) {
    const s = byId.get(id)!;
    if (s.status === 'skipped') {
      assert.equal(s.reason, 'high availability not available in this build');
    } else {
      assert.equal(s.status, 'ok', s.reason);
      const runs =
        id === 'failover'
          ? (s.figures!.runs as { synchronous: string; lost: number }[])
          : [s.figures as { lost: number }];
      for (const run of runs)
        if (!('synchronous' in run) || run.synchronous === 'on') assert.equal(run.lost, 0);
      // The default configuration (asynchronous) first, then the opt-in, each with its count.
      if (id === 'failover')
        assert.deepEqual(
          runs.map((r) => ('synchronous' in r ? r.synchronous : null)),
          ['off', 'on'],
        );
    }
  }

  // Sharding: the same writes on 1 and 2 groups (4 in a full run), each group's share counted.
  const writes = byId.get('write-scaling')!;
  assert.equal(writes.status, 'ok', writes.reason);
  const wstages = writes.figures!.stages as {
    groups: number;
    writesPerSecond: number;
    p99Ms: number;
    shares: number[];
  }[];
  assert.deepEqual(
    wstages.map((s) => s.groups),
    [1, 2],
  );
  for (const s of wstages) {
    assert.ok(s.writesPerSecond > 0 && s.p99Ms > 0, JSON.stringify(s));
    assert.equal(s.shares.length, s.groups);
    assert.ok(Math.abs(s.shares.reduce((a, b) => a + b, 0) - 1) < 1e-9, JSON.stringify(s));
    // 8 shards spread evenly: no group holds nothing.
    assert.ok(
      s.shares.every((x) => x > 0),
      JSON.stringify(s),
    );
  }
  assert.match(writes.conclusion ?? '', /writes\/s on 2 groups/);

  const query = byId.get('cross-group-query')!;
  assert.equal(query.status, 'ok', query.reason);
  const targets = query.figures!.targets as { groups: number; medianMs: number; answer: string }[];
  assert.deepEqual(
    targets.map((t) => t.groups),
    [1, 2],
  );
  assert.equal(targets[0]!.answer, targets[1]!.answer);
  assert.ok(targets.every((t) => t.medianMs > 0));

  const added = byId.get('add-group')!;
  assert.equal(added.status, 'ok', added.reason);
  const ag = added.figures as {
    groupsBefore: number;
    groupsAfter: number;
    moves: { to: string; pauseMs: number | null }[];
    acknowledged: number;
    lost: number;
    duplicates: number;
    jobState: string;
  };
  assert.equal(ag.groupsAfter, ag.groupsBefore + 1);
  assert.equal(ag.jobState, 'done');
  assert.ok(
    ag.moves.length >= 1 && ag.moves.every((m) => m.to === String(ag.groupsBefore)),
    JSON.stringify(ag.moves),
  );
  assert.ok(ag.moves.every((m) => m.pauseMs !== null));
  assert.ok(ag.acknowledged > 0);
  assert.equal(ag.lost, 0);
  assert.equal(ag.duplicates, 0);

  // The report in a real browser.
  if (!CHROMIUM) {
    if (process.env.CI) assert.fail('chromium is missing (apt-get install chromium)');
    t.diagnostic('skipping the browser check: no chromium (apt-get install chromium)');
    return;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    const url = pathToFileURL(html).href;
    page.on('request', (req) => {
      if (req.url() !== url) problems.push(`request: ${req.url()}`);
    });
    await page.goto(url);
    // Runs in the page; typed by hand since this project compiles without the DOM library.
    interface El {
      getAttribute(n: string): string | null;
      getBoundingClientRect(): { width: number };
      querySelectorAll(s: string): Iterable<{ getBBox(): { width: number; height: number } }>;
    }
    const charts = await page.$$eval('svg.chart', (svgs) =>
      (svgs as unknown as El[]).map((svg) => ({
        kind: svg.getAttribute('data-chart'),
        width: svg.getBoundingClientRect().width,
        data: [...svg.querySelectorAll('.datum')].filter((d) => {
          const b = d.getBBox();
          return b.width > 0 || b.height > 0;
        }).length,
      })),
    );
    const expected = results.scenarios.filter((s) => s.status === 'ok').length;
    assert.ok(charts.length >= expected, `${charts.length} charts for ${expected} scenarios run`);
    for (const c of charts) {
      assert.ok(c.width > 0, `chart ${c.kind} has no size`);
      assert.ok(c.data > 0, `chart ${c.kind} drew no data`);
    }
    assert.deepEqual(problems, []);
    if (process.env.PGSCALE_UPDATE_SCREENSHOT === '1') {
      await page.screenshot({ path: join(repoRoot, 'docs', 'demo-report.png'), fullPage: true });
      t.diagnostic('saved docs/demo-report.png');
    }
  } finally {
    await browser.close();
  }
});
