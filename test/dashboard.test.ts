/**
 * The dashboard on a running cluster, in a real browser (Debian's chromium through
 * playwright-core, headless, --no-sandbox as root): two groups with a standby each under `pgscale
 * up`, a distributed table and some load through the proxy. The page must render with no console
 * error and no request to anything but the controller, show every node with its role, and
 * reflect a switchover within 2 s of the API answering that it is done (the issue's
 * requirement; the clock starts when POST /ha/switchover returns) and a shard move once `pgscale
 * move-shard` returns. PGSCALE_UPDATE_SCREENSHOT=1 (`npm run dashboard:screenshot`) writes
 * docs/dashboard.png.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import type { Browser, Page } from 'playwright-core';
import { readApiToken } from '../src/controller/controller-file.js';
import { binarySets, cli, makeCluster, repoRoot, until } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';

const bins = binarySets()[0]!;
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
/** The bound: a switchover shows on the page within 2 s of being done. */
const SHOWN_WITHIN_MS = 2000;

/** The little of the DOM the functions run in the page use (the project builds without lib "dom"). */
declare const document: {
  querySelector(s: string): { getAttribute(n: string): string | null; textContent: string | null } | null;
  querySelectorAll(s: string): { length: number };
};

interface HaGroups {
  groups: { group: number; leader: string | null; epoch: number }[];
}

/** Queries through the proxy until stopped, reconnecting after errors (a switchover ends sessions). */
class Load {
  private stopped = false;
  private done: Promise<void> | null = null;
  count = 0;
  constructor(private readonly connect: () => Promise<pg.Client>) {}
  start(): void {
    this.done = this.run();
  }
  private async run(): Promise<void> {
    let c: pg.Client | null = null;
    let i = 0;
    while (!this.stopped) {
      try {
        c ??= await this.connect();
        const id = (i++ % 1000) + 1;
        await c.query(
          'INSERT INTO orders (id, note) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET note = $2',
          [id, `n${i}`],
        );
        await c.query('SELECT note FROM orders WHERE id = $1', [id]);
        // The simple protocol on a table of group 0 (the counters follow every protocol and path).
        await c.query(`INSERT INTO hits (n) VALUES (${id})`);
        await c.query('SELECT count(*) FROM hits');
        this.count++;
      } catch {
        await c?.end().catch(() => undefined);
        c = null;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await c?.end().catch(() => undefined);
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

describe(
  'the dashboard in a browser, on two groups with a standby each',
  { skip: !CHROMIUM && !process.env.CI ? 'no chromium (apt-get install chromium)' : false },
  () => {
    let sc: ShardedCluster;
    let browser: Browser | null = null;
    let page: Page;
    let base = '';
    let load: Load | null = null;
    const problems: string[] = [];

    before(async () => {
      assert.ok(CHROMIUM, 'chromium is missing (apt-get install chromium)');
      sc = await upSharded(bins, { groups: 2, replicas: 1 });
      base = `http://127.0.0.1:${sc.tc.cluster.config.http.port}`;
      const app = await sc.connectApp();
      try {
        await app.query('CREATE TABLE orders (id bigint PRIMARY KEY, note text)');
        await app.query("SELECT create_distributed_table('orders', 'id', shard_count => 8)");
        await app.query('CREATE TABLE hits (n int)');
      } finally {
        await app.end();
      }
      load = new Load(() => sc.connectApp());
      load.start();
      const { chromium } = await import('playwright-core');
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
      page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('request', (r) => {
        if (!r.url().startsWith(`${base}/`)) problems.push(`request to another origin: ${r.url()}`);
      });
    });
    after(async () => {
      await load?.stop();
      await browser?.close();
      await sc?.down();
    });

    async function post(path: string, body: unknown): Promise<{ status: number; body: unknown }> {
      const token = readApiToken(sc.tc.cluster.dataDir);
      assert.ok(token, 'the controller wrote its token');
      const r = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: r.status, body: await r.json() };
    }

    /** The role each node's row shows now. */
    const rolesShown = async (): Promise<Record<string, string | null>> => {
      const out: Record<string, string | null> = {};
      for (const row of await page.locator('[data-node]').all())
        out[(await row.getAttribute('data-node')) ?? '?'] = await row.getAttribute('data-role');
      return out;
    };

    test('the page shows every node of both groups with the role it has, with no console error', async () => {
      await page.goto(`${base}/dashboard`);
      const nodes = sc.tc.cluster.nodes();
      assert.equal(nodes.length, 4);
      await page.waitForFunction(
        (names) => names.every((n) => document.querySelector(`[data-node="${n}"]`)),
        nodes.map((n) => n.name),
        { timeout: 30_000 },
      );
      await until('the link live', async () => (await page.textContent('#link')) === 'live', 10_000);
      const status = await sc.tc.cluster.status();
      const shown = await rolesShown();
      for (const n of status) assert.equal(shown[n.name], n.role, `${n.name}'s role`);
      assert.equal(await page.locator('[data-group]').count(), 2);
      assert.match((await page.textContent('body')) ?? '', /Read-only/);
      assert.deepEqual(problems, []);
      // `pgscale dashboard` prints this page's URL; --open without a display only prints it.
      const printed = await cli(['dashboard', '-c', sc.tc.file], sc.tc.env);
      assert.equal(printed.stdout.trim(), `${base}/dashboard`, printed.stderr);
      const noDisplay = await cli(['dashboard', '-c', sc.tc.file, '--open'], {
        ...sc.tc.env,
        DISPLAY: '',
        WAYLAND_DISPLAY: '',
      });
      assert.equal(noDisplay.code, 0, noDisplay.stderr);
      assert.equal(noDisplay.stdout.trim(), `${base}/dashboard`);
      assert.match(noDisplay.stderr, /no display/);
    });

    test('a switchover shows within 2 s of the API answering it is done', async () => {
      const before = (await (await fetch(`${base}/ha`)).json()) as HaGroups;
      const old = before.groups[0]!.leader!;
      const r = await post('/ha/switchover', { group: 0 });
      const done = Date.now();
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const after = (await (await fetch(`${base}/ha`)).json()) as HaGroups;
      const leader = after.groups[0]!.leader!;
      assert.notEqual(leader, old);
      await page
        .waitForFunction(
          ({ leader, old }) =>
            document.querySelector(`[data-node="${leader}"]`)?.getAttribute('data-role') === 'primary' &&
            document.querySelector(`[data-node="${old}"]`)?.getAttribute('data-role') !== 'primary' &&
            (document.querySelector('[data-group="0"] h3')?.textContent ?? '').includes(`leader ${leader}`),
          { leader, old },
          { timeout: SHOWN_WITHIN_MS - (Date.now() - done), polling: 50 },
        )
        .catch(() =>
          assert.fail(`the page did not show ${leader} as group 0's primary within ${SHOWN_WITHIN_MS} ms`),
        );
      console.log(`# switchover shown ${Date.now() - done} ms after the API answered`);
      // Then the old primary comes back as a standby, and the history lists the switchover.
      await page.waitForFunction(
        (old) => document.querySelector(`[data-node="${old}"]`)?.getAttribute('data-role') === 'replica',
        old,
        { timeout: 60_000 },
      );
      assert.match((await page.textContent('#history')) ?? '', /switchover/);
      assert.deepEqual(problems, []);
    });

    test('a shard move shows in the shard map; pools and throughput have data', async () => {
      const map = (await (await fetch(`${base}/sharding/map`)).json()) as {
        shards_per_group: Record<string, number>;
        colocations: {
          kind: string;
          tables: { name: string; first_shard_id: number }[];
          placement: string[];
        }[];
      };
      const col = map.colocations.find((c) => c.kind === 'distributed')!;
      const r = col.placement.indexOf('0');
      const shardId = col.tables[0]!.first_shard_id + r;
      const onOne = map.shards_per_group['1']!;
      const moved = await cli(['move-shard', '-c', sc.tc.file, String(shardId), '--to', '1'], sc.tc.env);
      assert.equal(moved.code, 0, moved.stderr + moved.stdout);
      await page.waitForFunction(
        (text) => document.querySelector('[data-shards-of="1"]')?.textContent?.includes(text),
        `group 1: ${onOne + 1} shards`,
        { timeout: SHOWN_WITHIN_MS },
      );
      await until('throughput samples', () => Promise.resolve(load!.count > 50), 30_000);
      await until(
        'a sample with queries',
        async () => {
          const r = await fetch(`${base}/dashboard/state`);
          const s = (await r.json()) as { samples: { qps: number; query_ms: number | null }[] };
          return s.samples.some((x) => x.qps > 0 && x.query_ms !== null);
        },
        30_000,
      );
      await page.waitForFunction(() => document.querySelectorAll('svg.chart polyline').length === 2, null, {
        timeout: 10_000,
      });
      assert.match((await page.textContent('#pools')) ?? '', /listening on/);
      if (process.env.PGSCALE_UPDATE_SCREENSHOT) {
        await new Promise((res) => setTimeout(res, 8000)); // a few more seconds of chart
        await page.screenshot({ path: join(repoRoot, 'docs', 'dashboard.png'), fullPage: true });
      }
      assert.deepEqual(problems, []);
    });
  },
);

test('pgscale dashboard without a running controller says so and how to start it', async () => {
  const tc = await makeCluster(bins, { replicas: 0 });
  try {
    const r = await cli(['dashboard', '-c', tc.file], tc.env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no controller runs for cluster .*pgscale up --detach/);
    assert.equal(r.stdout, '');
  } finally {
    await tc.cleanup();
  }
});
