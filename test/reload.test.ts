/**
 * Configuration changes without an outage, as an operator makes them: pgscale.yaml edited and
 * `pgscale reload` (or `up` on the running cluster, or `edit-config` with $EDITOR a script).
 * A reloadable PostgreSQL setting reaches every node without a restart; a proxy setting reloads
 * with a client connected through it; what cannot change online is refused and nothing at all is
 * applied; a bad file is named; the history keeps the reloads.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { binarySets, cli, makeCluster, repoRoot, scalarOn, tempDir } from './harness.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import type { TestCluster } from './harness.js';
import { readSecrets } from '../src/cluster/secrets.js';
import type { Secrets } from '../src/cluster/secrets.js';
import type { NodeRef } from '../src/config/load.js';

const bins = binarySets()[0]!;

describe('pgscale reload, up and edit-config on a running cluster', () => {
  let tc: TestCluster;
  let secrets: Secrets;
  let original: string;
  let nodes: NodeRef[];
  const starts = new Map<string, string>();

  /** One query on a node, as the superuser. */
  const onNode = (n: NodeRef, sql: string) => scalarOn(tc, n, sql);
  const everywhere = (sql: string) => Promise.all(nodes.map((n) => onNode(n, sql)));
  const setFile = (text: string) => writeFileSync(tc.file, text);
  const withParams = (params: string, base = original) =>
    base.replace('  parameters: {}', `  parameters: { ${params} }`);

  before(async () => {
    tc = await makeCluster(bins, { replicas: 1 });
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    secrets = readSecrets(tc.cluster.dataDir)!;
    nodes = tc.cluster.nodes();
    original = readFileSync(tc.file, 'utf8');
    assert.match(original, /^ {2}parameters: \{\}$/m);
    for (const n of nodes) starts.set(n.name, await onNode(n, 'SELECT pg_postmaster_start_time()::text'));
  });
  after(async () => {
    await cli(['down', '-c', tc.file], tc.env);
    await tc.cleanup();
  });

  test('a reloadable parameter changes on every node, with no restart', async () => {
    setFile(withParams('work_mem: 12MB'));
    const r = await cli(['reload', '-c', tc.file], tc.env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /PostgreSQL settings \(nodes reloaded\):\n {2}postgres\.parameters\.work_mem: \(not set\) → "12MB"/,
    );
    assert.doesNotMatch(r.stdout, /pending restart/);
    assert.deepEqual(await everywhere('SHOW work_mem'), ['12MB', '12MB']);
    for (const n of nodes)
      assert.equal(
        await onNode(n, 'SELECT pg_postmaster_start_time()::text'),
        starts.get(n.name),
        `${n.name} restarted`,
      );
    const again = await cli(['reload', '-c', tc.file], tc.env);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /no change/);
  });

  test('a proxy setting reloads without dropping a connected client; HA settings for its next cycle', async () => {
    const s = secrets;
    const port = tc.cluster.config.proxy.port;
    const app = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: s.app, database: 'app' });
    const admin = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password: s.superuser,
      database: 'pgscale',
    });
    const errors: Error[] = [];
    app.on('error', (e) => errors.push(e));
    await app.connect();
    await admin.connect();
    try {
      await app.query('BEGIN');
      const pid = (await app.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p;
      setFile(
        withParams('work_mem: 12MB')
          .replace(/^proxy:\n/m, 'proxy:\n  default_pool_size: 7\n')
          .replace(/^ha:\n/m, 'ha:\n  loop_wait: 0.5\n'),
      );
      const r = await cli(['reload', '-c', tc.file], tc.env);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(
        r.stdout,
        /proxy \(reloaded, clients stay connected\):\n {2}proxy\.default_pool_size: 20 → 7/,
      );
      assert.match(r.stdout, /high availability \(from its next cycle\):\n {2}ha\.loop_wait: 0\.25 → 0\.5/);
      const cfg = await admin.query<{ key: string; value: string }>('SHOW CONFIG');
      assert.equal(cfg.rows.find((x) => x.key === 'default_pool_size')?.value, '7');
      // The client's transaction carries on, on the same server connection.
      assert.equal((await app.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p, pid);
      await app.query('COMMIT');
      assert.deepEqual(errors, []);
    } finally {
      await app.end().catch(() => undefined);
      await admin.end().catch(() => undefined);
    }
  });

  test('a proxy setting that needs its restart is named', async () => {
    const now = readFileSync(tc.file, 'utf8');
    const free = await findFreePortBlock(1);
    setFile(now.replace(/^(proxy:\n(?: {2}.*\n)*? {2}port: )\d+$/m, `$1${free}`));
    const r = await cli(['reload', '-c', tc.file], tc.env);
    setFile(now);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /proxy: needs a restart to take proxy\.port/);
    assert.equal((await cli(['reload', '-c', tc.file], tc.env)).code, 0);
  });

  test('changes that cannot be made online are refused by name, and nothing is applied', async () => {
    const now = readFileSync(tc.file, 'utf8');
    const s0n1 = nodes[1]!;
    // A good change beside the refused ones: it must not be applied either.
    setFile(
      now
        .replace('work_mem: 12MB', 'work_mem: 20MB')
        .replace(`port: ${s0n1.port}`, `port: ${s0n1.port + 50}`),
    );
    const r = await cli(['reload', '-c', tc.file], tc.env);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /refused:\n {2}groups\[0\]\.nodes\[s0n1\]\.port: \d+ → \d+ — the port of a running node/,
    );
    assert.match(
      r.stdout,
      /not applied: 1 change\(s\) cannot be applied while the cluster runs; nothing was applied/,
    );
    assert.deepEqual(await everywhere('SHOW work_mem'), ['12MB', '12MB']);
    // A new node: its own command is named.
    setFile(
      now.replace(
        /(\n {6}- name: s0n1\n(?: {8}.*\n)+)/,
        `$1      - name: s0n9\n        host: localhost\n        port: ${s0n1.port + 60}\n`,
      ),
    );
    const add = await cli(['reload', '-c', tc.file], tc.env);
    assert.equal(add.code, 1, add.stdout);
    assert.match(add.stdout, /a node \(s0n9\) is added with `pgscale add-replica --group 0`/);
    setFile(now);
  });

  test('an invalid file gives a clear message and changes nothing', async () => {
    const now = readFileSync(tc.file, 'utf8');
    setFile(now.replace('work_mem: 12MB', 'work_mem: 12MB, "Bad-Name": 1'));
    try {
      const r = await cli(['reload', '-c', tc.file], tc.env);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /invalid configuration:\n {2}- postgres\.parameters\.Bad-Name: /);
      // One PostgreSQL refuses: the node keeps its value and the reload says so.
      setFile(now.replace('work_mem: 12MB', 'work_mem: 12MB, no_such_setting: 1'));
      const pg = await cli(['reload', '-c', tc.file], tc.env);
      assert.equal(pg.code, 1, pg.stdout + pg.stderr);
      assert.match(pg.stdout, /s0n0 kept its old value of what PostgreSQL rejected: .*no_such_setting/);
    } finally {
      setFile(now);
      assert.equal((await cli(['reload', '-c', tc.file], tc.env)).code, 0);
    }
  });

  test('up on a running cluster applies a changed file', async () => {
    const now = readFileSync(tc.file, 'utf8');
    setFile(now.replace('work_mem: 12MB', 'work_mem: 16MB'));
    const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /is running \(pid \d+.*\); applying /);
    assert.match(r.stdout, /work_mem: "12MB" → "16MB"/);
    assert.deepEqual(await everywhere('SHOW work_mem'), ['16MB', '16MB']);
  });

  test('reload with a new user and database: made on the cluster, and the user logs in through the proxy', async () => {
    const now = readFileSync(tc.file, 'utf8');
    setFile(`${now}\nusers:\n  reporter:\n    databases: [reports]\ndatabases:\n  reports: {}\n`);
    const r = await cli(['reload', '-c', tc.file], tc.env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /users and databases/);
    const password = readSecrets(tc.cluster.dataDir)!.users?.reporter;
    assert.ok(password, 'a password generated for the new user');
    assert.ok(!r.stdout.includes(password) && !r.stderr.includes(password), 'no password in the output');
    const c = new pg.Client({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: 'reporter',
      password,
      database: 'reports',
    });
    await c.connect();
    try {
      assert.equal((await c.query('SELECT current_user AS u')).rows[0].u, 'reporter');
    } finally {
      await c.end();
    }
  });

  test('edit-config: $EDITOR edits a copy; a bad edit or no --yes leaves the file as it was', async () => {
    const before = readFileSync(tc.file, 'utf8');
    const editor = (sed: string) => {
      const script = join(tc.dir, 'editor.sh');
      writeFileSync(script, `#!/bin/sh\nsed -i '${sed}' "$1"\n`, { mode: 0o755 });
      return { ...tc.env, EDITOR: script, VISUAL: '' };
    };
    const bad = await cli(['edit-config', '-c', tc.file, '--yes'], editor('s/^ha:$/ha: [/'));
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /not applied; .*pgscale\.yaml is unchanged/);
    assert.equal(readFileSync(tc.file, 'utf8'), before);
    const ask = await cli(['edit-config', '-c', tc.file], editor('s/work_mem: 16MB/work_mem: 24MB/'));
    assert.equal(ask.code, 2, ask.stdout + ask.stderr);
    assert.match(ask.stdout, /postgres\.parameters\.work_mem: "16MB" → "24MB"/);
    assert.match(ask.stderr, /confirm with --yes/);
    assert.equal(readFileSync(tc.file, 'utf8'), before);
    const yes = await cli(
      ['edit-config', '-c', tc.file, '--yes'],
      editor('s/work_mem: 16MB/work_mem: 24MB/'),
    );
    assert.equal(yes.code, 0, yes.stdout + yes.stderr);
    assert.match(yes.stdout, /wrote .*pgscale\.yaml/);
    assert.match(readFileSync(tc.file, 'utf8'), /work_mem: 24MB/);
    assert.deepEqual(await everywhere('SHOW work_mem'), ['24MB', '24MB']);
  });

  test(
    'edit-config on a terminal: a bad edit is offered again, the change confirmed and applied',
    { skip: existsSync('/usr/bin/script') ? false : 'no script(1) for a terminal' },
    async () => {
      // The editor breaks the file the first time and makes the change the second.
      const script = join(tc.dir, 'editor2.sh');
      const count = join(tc.dir, 'editor2.count');
      writeFileSync(
        script,
        `#!/bin/sh\nif [ -e ${count} ]; then sed -i 's/^ha: \\[$/ha:/; s/work_mem: 24MB/work_mem: 32MB/' "$1"; else touch ${count}; sed -i 's/^ha:$/ha: [/' "$1"; fi\n`,
        { mode: 0o755 },
      );
      const cmd = [process.execPath, join(repoRoot, 'bin', 'pgscale.js'), 'edit-config', '-c', tc.file].join(
        ' ',
      );
      const child = spawn('script', ['-qec', cmd, '/dev/null'], {
        env: { ...process.env, PGSCALE_DEV: '1', ...tc.env, EDITOR: script, VISUAL: '' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let output = '';
      const answered = new Set<string>();
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        output += d;
        // Each answer once its question is on the screen.
        for (const [q, a] of [
          ['edit again? [Y/n]', '\n'],
          ['apply these changes? [y/N]', 'y\n'],
        ] as const) {
          if (output.includes(q) && !answered.has(q)) {
            answered.add(q);
            child.stdin.write(a);
          }
        }
      });
      const code = await new Promise<number | null>((r) => child.on('close', r));
      assert.equal(code, 0, output);
      assert.match(output, /edit again\? \[Y\/n\]/);
      assert.match(output, /postgres\.parameters\.work_mem: "24MB" → "32MB"/);
      assert.match(output, /applied/);
      assert.deepEqual(await everywhere('SHOW work_mem'), ['32MB', '32MB']);
    },
  );

  test('history shows each reload with its keys', async () => {
    const r = await cli(['history', '-c', tc.file, '--json'], tc.env);
    assert.equal(r.code, 0, r.stderr);
    const events = JSON.parse(r.stdout) as { event: string; detail?: string }[];
    const reloads = events.filter((e) => e.event === 'config_reloaded').map((e) => e.detail);
    assert.ok(reloads.includes('postgres.parameters.work_mem'), JSON.stringify(reloads));
    assert.ok(
      reloads.some((d) => d?.includes('proxy.default_pool_size')),
      JSON.stringify(reloads),
    );
    assert.ok(
      events.some((e) => e.event === 'config_rejected'),
      'the setting PostgreSQL rejected is in the history',
    );
  });
});

describe('the commands without a running cluster', () => {
  test('--help for each; without a controller they say how to start one', async () => {
    for (const cmd of ['reload', 'edit-config', 'restart', 'reinit']) {
      const r = await cli([cmd, '--help']);
      assert.equal(r.code, 0, cmd);
      assert.match(r.stdout, new RegExp(`^Usage: pgscale ${cmd} `));
    }
    const dir = tempDir();
    try {
      assert.equal((await cli(['init', '--dir', dir])).code, 0);
      const file = join(dir, 'pgscale.yaml');
      for (const args of [['reload'], ['restart'], ['reinit', 's0n1']]) {
        const r = await cli([...args, '-c', file]);
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, /no controller runs for cluster "pgscale"; start it with `pgscale up`/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
