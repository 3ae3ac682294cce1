/**
 * `pgscale agent` on SIGHUP (what systemd's `ExecReload` sends): it reads its file again and
 * applies the PostgreSQL settings to its nodes, keeps running through a file that does not load
 * or a change that cannot be made online (nothing applied), and a primary keeps its synchronous
 * standbys. Before, SIGHUP ended the agent (Node's default for the signal). One host, a real
 * single-member etcd, a primary and a standby on 127.0.0.1 (no network namespaces needed).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { EtcdProcess, etcdSkipReason } from './etcd-harness.js';
import { repoRoot, tempDir, until } from './harness.js';

const skip = etcdSkipReason();

describe('pgscale agent reloads on SIGHUP', { skip }, () => {
  const dir = tempDir('pgscale-agent-reload-');
  const file = join(dir, 'pgscale.yaml');
  let etcd: EtcdProcess;
  let agent: ChildProcess | null = null;
  let log = '';
  let ports: number;
  const config = (extra: string, nodePorts = [ports, ports + 1]) => `cluster:
  name: reload
  id: reload-${process.pid}
  data_dir: ./data
postgres:
  parameters:
    max_connections: 50
${extra}replication:
  synchronous: on
ha:
  store: etcd
  ttl: 10
  watchdog:
    mode: off
  etcd:
    endpoints: [${etcd.url}]
groups:
  - nodes:
      - { name: r0, host: 127.0.0.1, port: ${nodePorts[0]} }
      - { name: r1, host: 127.0.0.1, port: ${nodePorts[1]} }
`;
  const password = () =>
    (JSON.parse(readFileSync(join(dir, 'data', 'secrets.json'), 'utf8')) as { superuser: string }).superuser;
  const query = async (port: number, sql: string): Promise<string> => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password: password(),
      database: 'postgres',
    });
    await c.connect();
    try {
      return String(Object.values((await c.query(sql)).rows[0] as object)[0]);
    } finally {
      await c.end();
    }
  };
  const hangup = async (expect: RegExp) => {
    const from = log.length;
    agent!.kill('SIGHUP');
    await until(
      `the agent's log says ${expect}`,
      () => Promise.resolve(expect.test(log.slice(from))),
      60_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; the agent's log since the SIGHUP:\n${log.slice(from)}`);
    });
    assert.equal(agent!.exitCode, null, 'the agent still runs');
  };

  before(async () => {
    etcd = await EtcdProcess.start();
    ports = await findFreePortBlock(2);
    writeFileSync(file, config(''));
    agent = spawn(
      process.execPath,
      [join(repoRoot, 'bin', 'pgscale.js'), 'agent', '-c', file, '--host', '127.0.0.1'],
      {
        cwd: dir,
        env: { ...process.env, PGSCALE_DEV: '1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    agent.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    await until(
      'a primary with its standby streaming, synchronous',
      async () => {
        try {
          // Asked of the standby: while it is cloned, pg_basebackup streams under its name too.
          const streaming = await query(
            ports + 1,
            "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'",
          );
          return streaming === '1' && (await query(ports, 'SHOW synchronous_standby_names')).includes('r1');
        } catch {
          return false;
        }
      },
      180_000,
    );
  });
  after(async () => {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGTERM');
      await new Promise((r) => agent!.once('exit', r));
    }
    await etcd?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a PostgreSQL setting reaches both nodes; the primary keeps its synchronous standby', async () => {
    assert.equal(await query(ports, 'SHOW work_mem'), '4MB');
    writeFileSync(file, config('    work_mem: 12MB\n'));
    await hangup(/reload: r1 reloaded/);
    assert.match(log, /reload: r0 reloaded/);
    assert.equal(await query(ports, 'SHOW work_mem'), '12MB');
    assert.equal(await query(ports + 1, 'SHOW work_mem'), '12MB');
    assert.match(await query(ports, 'SHOW synchronous_standby_names'), /r1/);
  });

  test('a setting PostgreSQL takes only at a restart is named as pending', async () => {
    writeFileSync(file, config('    work_mem: 12MB\n    shared_buffers: 48MB\n'));
    await hangup(/reload: r1 reloaded; pending a restart: shared_buffers/);
  });

  test('a file that does not load, or a change refused online, applies nothing; the agent runs on', async () => {
    writeFileSync(file, 'cluster: [unclosed\n');
    await hangup(/not applied, the agent keeps the file it had/);
    writeFileSync(file, config('    work_mem: 20MB\n', [ports, ports + 7]));
    await hangup(/nothing applied, groups\S* cannot change while the cluster runs/);
    assert.equal(await query(ports, 'SHOW work_mem'), '12MB');
    // Back to a good file: applied.
    writeFileSync(file, config('    work_mem: 16MB\n'));
    await hangup(/reload: r0 reloaded/);
    assert.equal(await query(ports, 'SHOW work_mem'), '16MB');
  });
});
