/**
 * The replicated cluster end to end, against real PostgreSQL, once per available build
 * (Debian's PostgreSQL and the embedded PostgreSQL 18): provisioning through the CLI, streaming
 * replication with slots, the archive, restarts, replicas added and removed online, and secrets
 * kept out of process lists, logs and status.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { binarySets, cli, makeCluster, until } from './harness.js';
import type { TestCluster } from './harness.js';
import { withClient } from '../src/cluster/sql.js';
import { loadConfig } from '../src/config/load.js';
import { readSecrets } from '../src/cluster/secrets.js';

interface StatusJson {
  nodes: {
    name: string;
    group: number;
    role: string;
    port: number;
    pid: number | null;
    streaming: boolean;
    lagBytes: number | null;
    timeline: number | null;
    lsn: string | null;
    slot: { name: string } | null;
    state: string;
  }[];
}

const sets = binarySets();
if (sets.length === 0) throw new Error('no PostgreSQL binaries found for the integration tests');

for (const bins of sets) {
  describe(`cluster with PostgreSQL ${bins.version} (${bins.source})`, () => {
    let tc: TestCluster;
    const primary = () => tc.cluster.target(tc.cluster.nodes()[0]!, 'app');
    const node = (i: number) => tc.cluster.target(tc.cluster.nodes()[i]!, 'app');

    before(async () => {
      tc = await makeCluster(bins);
    });
    after(async () => {
      await tc.cleanup();
    });

    test('pgscale up --detach gives one primary and two streaming replicas', async () => {
      const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const s = await cli(['status', '-c', tc.file, '--json'], tc.env);
      assert.equal(s.code, 0, s.stderr);
      const st = JSON.parse(s.stdout) as StatusJson;
      assert.equal(st.nodes.length, 3);
      assert.deepEqual(
        st.nodes.map((n) => n.role),
        ['primary', 'replica', 'replica'],
      );
      for (const n of st.nodes) {
        assert.equal(n.state, 'running');
        assert.ok(n.pid && n.pid > 0);
        assert.equal(n.timeline, 1);
        assert.match(n.lsn ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
      }
      assert.ok(st.nodes.slice(1).every((n) => n.streaming && n.slot?.name === `pgscale_${n.name}`));
    });

    test('pg_stat_replication shows both standbys streaming through their slots', async () => {
      const rows = await withClient(
        primary(),
        async (c) =>
          (
            await c.query<{ application_name: string; state: string; slot_name: string; active: boolean }>(
              `SELECT r.application_name, r.state, s.slot_name, s.active
               FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid ORDER BY 1`,
            )
          ).rows,
      );
      assert.deepEqual(
        rows.map((r) => [r.application_name, r.state, r.slot_name, r.active]),
        [
          ['s0n1', 'streaming', 'pgscale_s0n1', true],
          ['s0n2', 'streaming', 'pgscale_s0n2', true],
        ],
      );
    });

    test('a committed row is visible on both standbys within a second', async () => {
      await withClient(primary(), async (c) => {
        await c.query('CREATE TABLE items (id int PRIMARY KEY, v text)');
        await c.query("INSERT INTO items VALUES (1, 'one')");
      });
      const t0 = Date.now();
      for (const i of [1, 2]) {
        await until(
          `row on s0n${i}`,
          () =>
            withClient(
              node(i),
              async (c) => (await c.query("SELECT 1 FROM items WHERE v = 'one'")).rowCount === 1,
            ),
          1000 - (Date.now() - t0),
        );
      }
    });

    test('the standbys refuse writes', async () => {
      await assert.rejects(
        withClient(node(1), (c) => c.query("INSERT INTO items VALUES (2, 'x')")),
        /read-only transaction/,
      );
    });

    test('WAL segments reach the archive', async () => {
      await withClient(primary(), async (c) => {
        await c.query("INSERT INTO items SELECT g, 'bulk' FROM generate_series(10, 5000) g");
        await c.query('SELECT pg_switch_wal()');
      });
      const dir = tc.cluster.archiveDir(0);
      const segs = await until('archived segments', () => {
        const names = readdirSync(dir).filter((n) => /^[0-9A-F]{24}$/.test(n));
        return Promise.resolve(names.length >= 2 ? names : null);
      });
      assert.ok(segs.every((n) => readFileSync(join(dir, n)).length === 16 * 1024 * 1024));
      assert.ok(!readdirSync(dir).some((n) => n.includes('.tmp')), 'no temporary files left');
      const s = JSON.parse((await cli(['status', '-c', tc.file, '--json'], tc.env)).stdout) as {
        nodes: { archive: { failedCount: number; lastArchivedWal: string | null } | null }[];
      };
      assert.equal(s.nodes[0]!.archive?.failedCount, 0);
      assert.ok(s.nodes[0]!.archive?.lastArchivedWal);
    });

    test('running up again is harmless', async () => {
      const pids = tc.cluster
        .nodes()
        .map(
          (n) => readFileSync(join(tc.cluster.paths(n.name).pgdata, 'postmaster.pid'), 'utf8').split('\n')[0],
        );
      const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
      assert.equal(r.code, 0, r.stderr);
      const again = tc.cluster
        .nodes()
        .map(
          (n) => readFileSync(join(tc.cluster.paths(n.name).pgdata, 'postmaster.pid'), 'utf8').split('\n')[0],
        );
      assert.deepEqual(again, pids);
    });

    test('down then up keeps the data', async () => {
      const d = await cli(['down', '-c', tc.file], tc.env);
      assert.equal(d.code, 0, d.stderr);
      assert.match(d.stdout, /stopped s0n0, s0n1, s0n2/);
      const st = await tc.cluster.status();
      assert.ok(st.every((n) => n.state === 'stopped'));
      const u = await cli(['up', '-c', tc.file, '--detach'], tc.env);
      assert.equal(u.code, 0, u.stderr);
      for (const i of [0, 1, 2]) {
        const n = await withClient(
          node(i),
          async (c) => (await c.query<{ n: string }>('SELECT count(*) AS n FROM items')).rows[0]!.n,
        );
        assert.equal(n, '4992');
      }
    });

    test('add-replica and remove-replica work online', async () => {
      // A client keeps writing meanwhile: the primary is never interrupted.
      let writes = 0;
      let failures = 0;
      let stop = false;
      const writer = withClient(primary(), async (c) => {
        while (!stop) {
          try {
            await c.query("INSERT INTO items VALUES ($1, 'live')", [100000 + writes]);
            writes++;
          } catch {
            failures++;
          }
        }
      });
      const add = await cli(['add-replica', '-c', tc.file], tc.env);
      assert.equal(add.code, 0, add.stderr + add.stdout);
      assert.match(add.stdout, /added s0n3/);
      const cfg = loadConfig(tc.file).config;
      assert.deepEqual(
        cfg.groups[0]!.nodes.map((n) => n.name),
        ['s0n0', 's0n1', 's0n2', 's0n3'],
      );
      assert.match(readFileSync(tc.file, 'utf8'), /# initial primary/, 'comments kept');
      const st = JSON.parse((await cli(['status', '-c', tc.file, '--json'], tc.env)).stdout) as StatusJson;
      assert.ok(st.nodes.find((n) => n.name === 's0n3')?.streaming);

      const rm = await cli(['remove-replica', '-c', tc.file, 's0n3'], tc.env);
      assert.equal(rm.code, 0, rm.stderr + rm.stdout);
      stop = true;
      await writer;
      assert.equal(failures, 0);
      assert.ok(writes > 0);
      assert.equal(loadConfig(tc.file).config.groups[0]!.nodes.length, 3);
      const slots = await withClient(
        primary(),
        async (c) =>
          (await c.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1'))
            .rows,
      );
      assert.deepEqual(
        slots.map((r) => r.slot_name),
        ['pgscale_s0n1', 'pgscale_s0n2'],
      );
      assert.equal(existsSync(join(tc.cluster.dataDir, 'nodes', 's0n3')), false);
      const refused = await cli(['remove-replica', '-c', tc.file, 's0n0'], tc.env);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /s0n0 is the primary/);
    });

    test('psql and url reach the nodes', { skip: bins.psql ? false : 'no psql' }, async () => {
      const r = await cli(
        ['psql', '-c', tc.file, 's0n2', '--', '-At', '-c', 'SELECT pg_is_in_recovery()'],
        tc.env,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), 't');
      const u = await cli(['url', '-c', tc.file], tc.env);
      assert.equal(u.code, 0, u.stderr);
      const url = new URL(u.stdout.trim());
      assert.equal(url.username, 'app');
      assert.equal(url.pathname, '/app');
      const pg = await import('pg');
      const c = new pg.default.Client({ connectionString: u.stdout.trim() });
      await c.connect();
      const who = await c.query<{ u: string }>('SELECT current_user AS u');
      await c.end();
      assert.equal(who.rows[0]!.u, 'app');
    });

    test('secrets appear in no process list, log, config file or status output', async () => {
      const secrets = readSecrets(tc.cluster.dataDir)!;
      const values = [secrets.superuser, secrets.replicator, secrets.app];
      const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      const logs = readdirSync(join(tc.cluster.dataDir, 'logs')).map((f) =>
        readFileSync(join(tc.cluster.dataDir, 'logs', f), 'utf8'),
      );
      const status =
        (await cli(['status', '-c', tc.file, '--json'], tc.env)).stdout +
        (await cli(['status', '-c', tc.file], tc.env)).stdout;
      const confs = tc.cluster.nodes().flatMap((n) =>
        ['postgresql.conf', 'postgresql.auto.conf', 'pgscale.conf'].map((f) => {
          const p = join(tc.cluster.paths(n.name).pgdata, f);
          return existsSync(p) ? readFileSync(p, 'utf8') : '';
        }),
      );
      for (const v of values) {
        for (const [where, text] of [
          ['ps', ps],
          ['logs', logs.join()],
          ['status', status],
          ['conf', confs.join()],
          ['yaml', readFileSync(tc.file, 'utf8')],
        ] as const) {
          assert.ok(!text.includes(v), `a password appears in ${where}`);
        }
      }
      const mode = (await import('node:fs')).statSync(join(tc.cluster.dataDir, 'secrets.json')).mode & 0o777;
      assert.equal(mode, 0o600);
      const rolpw = await withClient(
        primary(),
        async (c) =>
          (
            await c.query<{ p: string }>(
              "SELECT rolpassword AS p FROM pg_authid WHERE rolname = 'replicator'",
            )
          ).rows[0]!.p,
      );
      assert.match(rolpw, /^SCRAM-SHA-256\$/);
      const hba = readFileSync(join(tc.cluster.paths('s0n0').pgdata, 'pg_hba.conf'), 'utf8');
      assert.doesNotMatch(hba, /\b(md5|trust|password)\s*$/m);
    });

    test('the modern standby set-up: standby.signal, no recovery.conf, checksums on', async () => {
      const pgdata = tc.cluster.paths('s0n1').pgdata;
      assert.ok(existsSync(join(pgdata, 'standby.signal')));
      assert.ok(!existsSync(join(pgdata, 'recovery.conf')));
      const auto = readFileSync(join(pgdata, 'postgresql.auto.conf'), 'utf8');
      assert.match(auto, /primary_slot_name = 'pgscale_s0n1'/);
      assert.match(auto, /passfile=/);
      const s = await withClient(
        primary(),
        async (c) =>
          (
            await c.query<{ name: string; setting: string }>(
              "SELECT name, setting FROM pg_settings WHERE name IN ('data_checksums','wal_level','password_encryption','wal_keep_size','max_slot_wal_keep_size','archive_mode','max_prepared_transactions') ORDER BY 1",
            )
          ).rows,
      );
      assert.deepEqual(Object.fromEntries(s.map((r) => [r.name, r.setting])), {
        archive_mode: 'on',
        data_checksums: 'on',
        max_prepared_transactions: '64',
        max_slot_wal_keep_size: '4096',
        password_encryption: 'scram-sha-256',
        wal_keep_size: '256',
        wal_level: 'logical',
      });
      // Two-phase commit across groups needs it on every node; a standby needs at least the primary's.
      for (const i of [1, 2]) {
        const [row] = await withClient(
          node(i),
          async (c) => (await c.query<{ v: string }>("SELECT current_setting('max_prepared_transactions') AS v")).rows,
        );
        assert.equal(row?.v, '64', `standby ${i}`);
      }
    });
  });
}
