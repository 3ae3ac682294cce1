/**
 * Backups with pgBackRest on a running cluster (backup.enabled, a primary and one standby, under
 * `pgscale up --detach`): the WAL goes to pgBackRest's repository, `pgscale backup` reads from the
 * streaming standby, `backups` lists it with its WAL range, an archive failure (the repository
 * made unwritable) shows in `status` and in /metrics and clears when it is writable again, bad
 * input is refused with a message naming it and changes nothing, and a damaged file in the
 * repository is found by `verify`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { pgbackrestPaths, stanzaName } from '../src/cluster/pgbackrest.js';
import { runningPid } from '../src/cluster/instance.js';
import { cli, until } from './harness.js';
import type { TestCluster } from './harness.js';
import { primaryNode, skipReason, superClient, switchAndArchive, upBackupCluster } from './backup-support.js';

interface Listed {
  groups: {
    group: number;
    status: string;
    walMin: string | null;
    walMax: string | null;
    backups: { label: string; type: string; start: string; stop: string; size: number; walStart: string }[];
  }[];
}

describe('backups with pgBackRest', { skip: skipReason }, () => {
  let tc: TestCluster;
  let primary: pg.Client;
  const repo = () => join(tc.cluster.dataDir, 'backup');
  const run = (...args: string[]) => cli([...args, '-c', tc.file], tc.env);

  before(async () => {
    tc = await upBackupCluster();
    primary = await superClient(tc, primaryNode(tc));
    await primary.query('CREATE TABLE t (id int PRIMARY KEY)');
  });
  after(async () => {
    await primary?.end().catch(() => undefined);
    await tc?.cleanup();
  });

  test('the WAL is archived by pgBackRest into the stanza of group 0, not the local archive', async () => {
    const conf = readFileSync(pgbackrestPaths(tc.cluster.dataDir).conf, 'utf8');
    assert.match(conf, new RegExp(`^\\[${stanzaName(tc.cluster.config.cluster.name, 0)}\\]$`, 'm'));
    assert.match(conf, /^pg2-path=.*s0n1$/m);
    const r = await primary.query<{ setting: string }>(
      "SELECT setting FROM pg_settings WHERE name = 'archive_command'",
    );
    assert.match(r.rows[0]!.setting, /pgbackrest .*--stanza=.*archive-push/);
    await switchAndArchive(primary);
    assert.deepEqual(readdirSync(tc.cluster.archiveDir(0)), []);
  });

  test('bad input: no backup yet, --to garbage, --in-place without --yes, both or neither place', async () => {
    const into = join(tc.dir, 'never');
    const cases: [string[], number, RegExp][] = [
      [['restore', '--to', 'latest', '--into', into], 1, /group 0 has no backup yet.*nothing was changed/],
      [['restore', '--to', 'last tuesday', '--into', into], 2, /--to "last tuesday" is not a restore target/],
      [['restore', '--to', 'latest', '--in-place'], 2, /Add --yes to confirm \(nothing was changed\)/],
      [
        ['restore', '--to', 'latest', '--in-place', '--yes', '--into', into],
        2,
        /--into DIR .* or --in-place --yes/,
      ],
      [['restore', '--into', into], 2, /name the restore target/],
      [['backup', '--type', 'weekly'], 2, /--type must be full, diff or incr/],
      [['backup', '--group', '7'], 2, /--group must be a whole number from 0 to 0/],
    ];
    const pid = runningPid(tc.cluster.paths('s0n0').pgdata);
    for (const [args, code, message] of cases) {
      const r = await run(...args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}${r.stdout}`);
      assert.match(r.stderr, message, args.join(' '));
    }
    assert.equal(existsSync(into), false);
    assert.equal(runningPid(tc.cluster.paths('s0n0').pgdata), pid, 'the primary kept running');
    const bad = await cli(['restore', '--help'], tc.env);
    assert.equal(bad.code, 0);
  });

  test('a schedule with a bad value is refused naming the key', async () => {
    const file = join(tc.dir, 'bad.yaml');
    const text = readFileSync(tc.file, 'utf8').replace(
      /^backup:\n {2}enabled: true\n/m,
      'backup:\n  enabled: true\n  schedule:\n    full: "sunday at 1"\n',
    );
    writeFileSync(file, text);
    const r = await cli(['backups', '-c', file], tc.env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /backup\.schedule\.full.*"every N"/s);
  });

  test('pgscale backup reads from the streaming standby; backups lists it with its WAL range', async () => {
    await primary.query('INSERT INTO t SELECT generate_series(1, 1000)');
    const r = await run('backup', '--json');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const taken = (JSON.parse(r.stdout) as { backups: { from: string | null; backup: { type: string } }[] })
      .backups;
    assert.equal(taken.length, 1);
    assert.equal(taken[0]!.from, 's0n1');
    assert.equal(taken[0]!.backup.type, 'full');
    const incr = await run('backup', '--type', 'incr');
    assert.equal(incr.code, 0, incr.stderr + incr.stdout);
    assert.match(incr.stdout, /group 0: incr backup \S+I from standby s0n1/);
    const listed = await run('backups', '--json');
    assert.equal(listed.code, 0, listed.stderr);
    const g = (JSON.parse(listed.stdout) as Listed).groups[0]!;
    assert.equal(g.status, 'ok');
    assert.deepEqual(
      g.backups.map((b) => b.type),
      ['full', 'incr'],
    );
    for (const b of g.backups) {
      assert.ok(b.size > 0 && Date.parse(b.stop) >= Date.parse(b.start), JSON.stringify(b));
      assert.match(b.walStart, /^[0-9A-F]{24}$/);
    }
    assert.ok(g.walMin && g.walMax && g.walMin <= g.walMax);
    const text = await run('backups');
    assert.match(text.stdout, /LABEL +TYPE +START +STOP +SIZE +REPO +WAL/);
    assert.match(text.stdout, /group 0 \(stanza \S+-g0\): 2 backup\(s\), status ok/);
  });

  test('an archive failure shows in status and /metrics, and clears once the repository is writable', async () => {
    const dir = join(repo(), 'archive', stanzaName(tc.cluster.config.cluster.name, 0));
    const mode = statSync(dir).mode & 0o777;
    chmodSync(dir, 0o000);
    const metrics = async () => {
      const { listen, port } = tc.cluster.config.http;
      return (await fetch(`http://${listen}:${port}/metrics`)).text();
    };
    try {
      await primary.query('INSERT INTO t VALUES (5000)');
      await primary.query('SELECT pg_switch_wal()');
      const st = await until(
        'the archiver failing',
        async () => {
          const s = await run('status', '--json');
          const n = (
            JSON.parse(s.stdout) as { nodes: { name: string; archive: { failedCount: number } | null }[] }
          ).nodes;
          return (n.find((x) => x.name === 's0n0')?.archive?.failedCount ?? 0) > 0 ? s : null;
        },
        60_000,
      );
      assert.ok(st);
      const text = await run('status');
      assert.match(text.stdout, /s0n0 .* FAILING [0-9A-F]{24} \(\d+ failures\)/);
      assert.equal(text.code, 3, 'status exits 3 while a node cannot archive');
      await until('pgscale_archive_failing 1', async () =>
        /^pgscale_archive_failing\{node="s0n0",group="0"\} 1$/m.test(await metrics()),
      );
      assert.match(await metrics(), /^pgscale_archive_failed_count\{node="s0n0",group="0"\} [1-9]\d*$/m);
    } finally {
      chmodSync(dir, mode);
    }
    // PostgreSQL retries the segment (every minute at most) and succeeds.
    await until(
      'archiving recovered',
      async () => /^pgscale_archive_failing\{node="s0n0",group="0"\} 0$/m.test(await metrics()),
      120_000,
    );
    const healed = await run('status');
    assert.doesNotMatch(healed.stdout, /FAILING/);
    assert.equal(healed.code, 0, healed.stdout);
  });

  test('verify passes on an intact repository and names the backup whose file was damaged', async () => {
    const ok = await run('verify');
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.match(ok.stdout, /group 0: verified/);
    const label = (JSON.parse((await run('backups', '--json')).stdout) as Listed).groups[0]!.backups[0]!
      .label;
    const base = join(
      repo(),
      'backup',
      stanzaName(tc.cluster.config.cluster.name, 0),
      label,
      'pg_data',
      'base',
    );
    const victim = readdirSync(base)
      .flatMap((db) => readdirSync(join(base, db)).map((f) => join(base, db, f)))
      .find((f) => statSync(f).size > 1000)!;
    const bytes = readFileSync(victim);
    bytes.write('damaged', 200);
    writeFileSync(victim, bytes);
    const bad = await run('verify');
    assert.equal(bad.code, 1, bad.stdout);
    assert.match(bad.stdout, /group 0: PROBLEMS FOUND/);
    assert.match(bad.stdout, new RegExp(`backup: ${label}, status: invalid`));
    const viaBackups = await run('backups', '--verify');
    assert.equal(viaBackups.code, 1);
    assert.match(viaBackups.stdout, /checksum invalid: [1-9]/);
  });
});
