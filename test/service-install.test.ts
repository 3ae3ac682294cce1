/**
 * `pgscale service install|uninstall` as an operator runs it: units written into a directory of
 * our choosing pass `systemd-analyze verify` (where the machine has it: Debian's systemd package;
 * the check is skipped with a note where it does not), hold no secret, and say how the process
 * must be run (user, working directory, restart, limits, KillMode); --dry-run writes nothing;
 * uninstall removes only what install wrote; bad input is named.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { cli, tempDir } from './harness.js';
import { loadOrCreateSecrets } from '../src/cluster/secrets.js';
import { INIT_DEFAULTS, renderConfig } from '../src/config/template.js';

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0;

/** A cluster file (never started) and its data directory with secrets, in a temporary directory. */
/** Every directory cluster() made, removed after the suite (even when its set-up failed). */
const dirs: string[] = [];

function cluster(name: string, edit: (yaml: string) => string = (y) => y) {
  const dir = tempDir('pgscale-svc-');
  dirs.push(dir);
  const file = join(dir, 'pgscale.yaml');
  writeFileSync(file, edit(renderConfig({ ...INIT_DEFAULTS, name, replicas: 1 })));
  mkdirSync(join(dir, 'data'), { mode: 0o700 });
  const secrets = loadOrCreateSecrets(join(dir, 'data'));
  return { dir, file, units: join(dir, 'units'), secrets };
}

describe('pgscale service', () => {
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const me = userInfo().username;

  test('install writes the controller unit: user, working directory, restart, limits, KillMode; no secret', async () => {
    const c = cluster('svc-one');
    const env = { PGSCALE_PG_BIN: '/opt/pg/bin', PGPASSWORD: c.secrets.superuser };
    const r = await cli(['service', 'install', '-c', c.file, '--unit-dir', c.units], env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(c.units), ['pgscale-svc-one.service']);
    const unit = readFileSync(join(c.units, 'pgscale-svc-one.service'), 'utf8');
    for (const line of [
      'Type=simple',
      `User=${me}`,
      `WorkingDirectory=${c.dir}`,
      'Restart=on-failure',
      'KillMode=process',
      'LimitNOFILE=65536',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'Environment=PGSCALE_PG_BIN=/opt/pg/bin',
      'WantedBy=multi-user.target',
    ])
      assert.ok(unit.split('\n').includes(line), `${line} in\n${unit}`);
    assert.match(
      unit,
      new RegExp(`^ExecStart=${process.execPath}\\s\\S+/bin/pgscale\\.js controller -c ${c.file}$`, 'm'),
    );
    for (const secret of [c.secrets.superuser, c.secrets.replicator, c.secrets.app])
      assert.ok(!unit.includes(secret), 'no password in the unit');
    assert.doesNotMatch(unit, /PGPASSWORD|password/i);
    assert.match(r.stdout, /systemctl daemon-reload && systemctl enable --now pgscale-svc-one\.service/);
  });

  test('the units pass systemd-analyze verify (controller, agent, standalone proxy)', async (t) => {
    if (!analyze) {
      t.skip('systemd-analyze is not installed (Debian package systemd): the units were not verified');
      return;
    }
    const c = cluster('svc-etcd', (y) => y.replace('  store: embedded\n', '  store: etcd\n'));
    const r = await cli([
      'service',
      'install',
      '-c',
      c.file,
      '--unit-dir',
      c.units,
      '--units',
      'agent,proxy',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const files = readdirSync(c.units).sort();
    assert.deepEqual(files, ['pgscale-svc-etcd-agent.service', 'pgscale-svc-etcd-proxy.service']);
    assert.match(readFileSync(join(c.units, files[1]!), 'utf8'), /proxy -c \S+ --cluster$/m);
    assert.match(readFileSync(join(c.units, files[1]!), 'utf8'), /^KillMode=mixed$/m);
    const one = cluster('svc-verify');
    assert.equal((await cli(['service', 'install', '-c', one.file, '--unit-dir', c.units])).code, 0);
    const all = readdirSync(c.units).map((f) => join(c.units, f));
    assert.equal(all.length, 3);
    const v = spawnSync('systemd-analyze', ['verify', ...all], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stderr.trim(), '', 'no warning');
  });

  test('--dry-run prints the units and writes nothing', async () => {
    const c = cluster('svc-dry');
    const r = await cli(['service', 'install', '-c', c.file, '--unit-dir', c.units, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /# would write \S+pgscale-svc-dry\.service/);
    assert.match(r.stdout, /^ExecStart=.* controller -c /m);
    assert.ok(!existsSync(c.units), 'no directory made');
  });

  test('uninstall removes the units install wrote and keeps any other file', async () => {
    const c = cluster('svc-rm');
    assert.equal((await cli(['service', 'install', '-c', c.file, '--unit-dir', c.units])).code, 0);
    const dry = await cli(['service', 'uninstall', '-c', c.file, '--unit-dir', c.units, '--dry-run']);
    assert.match(dry.stdout, /would remove \S+pgscale-svc-rm\.service/);
    assert.ok(existsSync(join(c.units, 'pgscale-svc-rm.service')));
    writeFileSync(join(c.units, 'pgscale-svc-rm-proxy.service'), '[Service]\nExecStart=/bin/true\n');
    const r = await cli(['service', 'uninstall', '-c', c.file, '--unit-dir', c.units]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kept \S+pgscale-svc-rm-proxy\.service: pgscale did not write it/);
    assert.deepEqual(readdirSync(c.units), ['pgscale-svc-rm-proxy.service']);
  });

  test('bad input names the problem and writes nothing', async () => {
    const c = cluster('svc-bad');
    const cases: [string[], number, RegExp][] = [
      [['service'], 0, /Usage: pgscale service install/],
      [['service', 'start'], 2, /unknown action "start"; use install or uninstall/],
      [['service', 'install', '-c', c.file, '--units', 'web'], 2, /--units: unknown unit "web"/],
      [['service', 'install', '-c', c.file, '--units', 'agent'], 2, /needs ha\.store: etcd/],
      [
        ['service', 'install', '-c', c.file, '--units', 'proxy'],
        2,
        /the controller runs this cluster's proxy/,
      ],
      [
        ['service', 'install', '-c', c.file, '--user', 'no-such-user-pgscale'],
        2,
        /no user "no-such-user-pgscale"/,
      ],
      [
        ['service', 'install', '-c', c.file, '--unit-dir', join(c.file, 'x')],
        1,
        /cannot write into .*--unit-dir/,
      ],
      [['service', 'uninstall', '-c', c.file, '--user', me], 2, /takes no --user/],
      [['service', 'install', '-c', join(c.dir, 'missing.yaml')], 1, /missing\.yaml/],
    ];
    for (const [args, code, message] of cases) {
      const own = args.length < 2 || args.includes('--unit-dir');
      const r = await cli([...args, ...(own ? [] : ['--unit-dir', c.units])]);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(code === 0 ? r.stdout : r.stderr, message, args.join(' '));
    }
    assert.ok(!existsSync(c.units));
  });
});
