/**
 * What a new operator ran into (issue #11, "found by a new operator"): output piped into `head`,
 * `init --port-base` moving every port, port clashes all named at once, and the README's own
 * sequence of commands working as written.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { allNodes, loadConfig } from '../src/config/load.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { binarySets, cli, makeCluster, repoRoot, tempDir, until } from './harness.js';
import type { CliResult, TestCluster } from './harness.js';
import pg from 'pg';
import { readSecrets } from '../src/cluster/secrets.js';
import { pidAlive, runningPid } from '../src/cluster/instance.js';

const bins = binarySets()[0]!;
const env = { PGSCALE_PG_BIN: bins.dir };
const dirs: string[] = [];
const dir = () => {
  const d = tempDir();
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs the CLI with its stdout closed before it writes anything, as `| head -0` would. */
function cliClosedStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'pgscale.js'), ...args], {
      env: { ...process.env, PGSCALE_DEV: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('output into a closed pipe', () => {
  test('pgscale status | head: no EPIPE, no stack trace, the command’s own exit code', async () => {
    const d = dir();
    const init = await cliClosedStdout(['init', '--dir', d]);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(init.stderr, '');
    const help = await cliClosedStdout(['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.equal(help.stderr, '');
    // Nothing runs: status says so with exit code 3 (a node is down), and nothing on stderr.
    const status = await cliClosedStdout(['status', '-c', join(d, 'pgscale.yaml')]);
    assert.equal(status.stderr, '');
    assert.equal(status.code, 3);
  });
});

/** Something else on a port: accepts connections and never answers (they are dropped at close). */
function listen(port: number): Promise<Server> {
  const srv = createServer((socket) => socket.destroy());
  return new Promise((resolve) => srv.listen(port, '127.0.0.1', () => resolve(srv)));
}

describe('init --port-base and port clashes', () => {
  test('--port-base moves every port: nodes, proxy, HTTP API, health endpoints', async () => {
    const d = dir();
    const base = await findFreePortBlock(105);
    const r = await cli(['init', '--dir', d, '--port-base', String(base)], env);
    assert.equal(r.code, 0, r.stderr);
    const { config } = loadConfig(join(d, 'pgscale.yaml'));
    const ports = [
      config.proxy.port,
      config.http.port,
      ...allNodes(config).flatMap((n) => [n.port, n.apiPort]),
    ];
    assert.equal(new Set(ports).size, ports.length, `ports repeat: ${ports.join(' ')}`);
    for (const p of ports)
      assert.ok(p >= base && p < base + 105, `port ${p} is outside ${base}…${base + 104}`);
    assert.equal(allNodes(config)[0]!.port, base);
  });

  test('up names every port in use in one message, and creates nothing', async () => {
    const d = dir();
    const base = await findFreePortBlock(105);
    assert.equal((await cli(['init', '--dir', d, '--port-base', String(base)], env)).code, 0);
    const file = join(d, 'pgscale.yaml');
    const { config, dataDir } = loadConfig(file);
    const [n0, n1] = allNodes(config);
    const taken = [n1!.port, config.proxy.port, config.http.port, n0!.apiPort];
    const servers = await Promise.all(taken.map(listen));
    try {
      const r = await cli(['up', '-c', file, '--detach'], env);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /4 ports of cluster "pgscale" cannot be used/);
      assert.match(r.stderr, new RegExp(`port ${n1!.port} of node s0n1`));
      assert.match(r.stderr, new RegExp(`port ${config.proxy.port} of the proxy`));
      assert.match(r.stderr, new RegExp(`port ${config.http.port} of the HTTP API`));
      assert.match(r.stderr, new RegExp(`port ${n0!.apiPort} of the health endpoints of node s0n0`));
      assert.equal(existsSync(dataDir), false);
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
  });
});

/** Splits one shell line into words: '…' and "…" quoting, $(npx pgscale …) substitution. */
async function words(line: string, sub: (cmd: string) => Promise<string>): Promise<string[]> {
  const out: string[] = [];
  const re = /'([^']*)'|"\$\(([^)]*)\)"|(\S+)/g;
  for (const m of line.matchAll(re)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(await sub(m[2]));
    else out.push(m[3]!);
  }
  return out;
}

function run(bin: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe("the README's usage, as a new user runs it", () => {
  test(
    'init, up, psql create table, the app inserts through the proxy, switchover, add/remove-replica, destroy',
    { skip: bins.psql ? false : 'no psql', timeout: 600_000 },
    async () => {
      const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
      const block = /## Usage\n\n```sh\n([\s\S]*?)```/.exec(readme)![1]!;
      const lines = block
        .split('\n')
        .map((l) => l.replace(/\s+#.*$/, '').trim())
        .filter((l) => l.includes('./c1/') || l.includes('--dir ./c1'))
        // Needs a fixed port and prints only; the test checks the HTTP API elsewhere.
        .filter((l) => !l.startsWith('curl') && !l.includes('haproxy-config'));
      assert.ok(lines.length >= 12, lines.join('\n'));
      const d = dir();
      const c1 = join(d, 'c1');
      const base = await findFreePortBlock(105);
      const pgscale = async (cmd: string): Promise<CliResult> => {
        const args = (await words(cmd.replaceAll('./c1', c1), pgscaleOut)).slice(2); // "npx pgscale"
        // The one change: a port block of its own, as the machine runs other clusters.
        if (args[0] === 'init') args.push('--port-base', String(base));
        return cli(args, env, d);
      };
      const pgscaleOut = async (cmd: string) => {
        const r = await pgscale(cmd);
        assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
        return r.stdout.trim();
      };
      try {
        for (const line of lines) {
          const r = line.startsWith('npx pgscale ')
            ? await pgscale(line)
            : line.startsWith('psql ')
              ? await run(bins.psql!, (await words(line.replaceAll('./c1', c1), pgscaleOut)).slice(1))
              : assert.fail(`a README line the test cannot run: ${line}`);
          assert.equal(r.code, 0, `${line}\n${r.stdout}\n${r.stderr}`);
          if (line.includes('insert into t')) assert.match(r.stdout, /INSERT 0 1/);
        }
      } finally {
        await cli(['destroy', '--yes', '-c', join(c1, 'pgscale.yaml')], env, d);
      }
    },
  );
});

describe('under a running controller', () => {
  let tc: TestCluster;
  before(async () => {
    tc = await makeCluster(bins, { replicas: 1 });
    const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
  });
  after(async () => {
    await tc?.cleanup();
  });

  const status = async () => {
    const r = await cli(['status', '-c', tc.file, '--json'], tc.env);
    return (JSON.parse(r.stdout) as { nodes: { name: string; role: string | null; state: string }[] }).nodes;
  };

  /** The replicas the controller's proxy follows (GET /services), all groups together. */
  const proxyReplicas = async () => {
    const res = await fetch(`http://127.0.0.1:${tc.cluster.config.http.port}/services`);
    const body = (await res.json()) as {
      services: { name: string; status: { topology?: { replicas: string[][] } } }[];
    };
    return body.services.find((s) => s.name === 'proxy')!.status.topology!.replicas.flat();
  };

  test('right after a failover, status shows the old primary fenced, not as a primary', async () => {
    const f = await cli(['failover', '-c', tc.file], tc.env);
    assert.equal(f.code, 0, f.stderr + f.stdout);
    const nodes = await status();
    const primaries = nodes.filter((n) => n.role === 'primary');
    assert.deepEqual(
      primaries.map((n) => [n.name, n.state]),
      [['s0n1', 'running']],
      JSON.stringify(nodes),
    );
    // Fenced while down or being rewound, then starting and running as a standby: never a primary.
    const old = nodes.find((n) => n.name === 's0n0')!;
    assert.ok(['running', 'starting', 'fenced'].includes(old.state), JSON.stringify(old));
    assert.equal(old.role, 'replica', JSON.stringify(old));
  });

  test('add-replica under a running controller: at once in the read set, with health endpoints; switchover --to it works', async () => {
    // After the failover above: once the old primary has rejoined and streams.
    await until(
      'every node running and streaming',
      async () => (await cli(['status', '-c', tc.file], tc.env)).code === 0,
      60_000,
    );
    const add = await cli(['add-replica', '-c', tc.file], tc.env);
    const added = new Date().toISOString();
    assert.equal(add.code, 0, add.stderr + add.stdout);
    assert.match(add.stdout, /the controller supervises s0n2/);
    // add-replica returns once the proxy follows it (not merely once the controller knows it).
    assert.ok((await proxyReplicas()).includes('s0n2'), JSON.stringify(await proxyReplicas()));
    const n2 = allNodes(loadConfig(tc.file).config).find((n) => n.name === 's0n2')!;
    // Its health endpoint answers, as a replica.
    const res = await fetch(`http://127.0.0.1:${n2.apiPort}/replica`);
    assert.equal(res.status, 200, await res.text());
    // The proxy reads from it.
    const s = readSecrets(tc.cluster.dataDir)!;
    const admin = new pg.Client({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: tc.cluster.config.postgres.superuser,
      password: s.superuser,
      database: 'pgscale',
    });
    // A pool for the application (the read set belongs to it).
    const app = new pg.Client({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: 'app',
      password: s.app,
      database: 'app',
    });
    // When the app's pool was made, against when the proxy learnt of s0n2 (its log line
    // "group 0: routing writes to …" with s0n2): a failure says which came first.
    const loginStarted = new Date().toISOString();
    await app.connect();
    const loginDone = new Date().toISOString();
    await app.query('SELECT 1');
    await admin.connect();
    try {
      await until(
        "s0n2 in the proxy's read set",
        async () => {
          const r = await admin.query<{ addr: string; in_read_set: string }>('SHOW NODES');
          return r.rows.some((x) => x.addr.endsWith(`:${n2.port}`) && x.in_read_set === 't');
        },
        30_000,
      ).catch(async (e: Error) => {
        const nodes = (await admin.query('SHOW NODES')).rows;
        const pools = (await admin.query('SHOW POOLS')).rows;
        const log = readFileSync(`${tc.cluster.dataDir}/logs/controller.log`, 'utf8').split('\n').slice(-40);
        throw new Error(
          `${e.message}; add-replica returned at ${added}, the app's login ran ${loginStarted} … ${loginDone}; ` +
            `SHOW NODES: ${JSON.stringify(nodes)}; SHOW POOLS: ${JSON.stringify(pools)}; ` +
            `controller log tail:\n${log.join('\n')}`,
        );
      });
    } finally {
      await admin.end();
      await app.end();
    }
    // A planned switchover to it.
    const sw = await cli(['switchover', '-c', tc.file, '--to', 's0n2'], tc.env);
    assert.equal(sw.code, 0, sw.stderr + sw.stdout);
    const nodes = await status();
    assert.equal(nodes.find((n) => n.name === 's0n2')?.role, 'primary', JSON.stringify(nodes));
  });

  test('remove-replica under a running controller: let go first, not restarted', async () => {
    const before = await status();
    const victim = before.find((n) => n.role === 'replica' && n.state === 'running')!;
    const r = await cli(['remove-replica', '-c', tc.file, victim.name], tc.env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, new RegExp(`the controller no longer supervises ${victim.name}`));
    assert.ok(!(await proxyReplicas()).includes(victim.name), JSON.stringify(await proxyReplicas()));
    // High availability does not bring it back (it would after 3 s: STANDBY_RESTART_GRACE_MS).
    await new Promise((res) => setTimeout(res, 5000));
    assert.equal(existsSync(tc.cluster.paths(victim.name).pgdata), false);
    const after = await status();
    assert.equal(
      after.find((n) => n.name === victim.name),
      undefined,
    );
  });
});

describe('a cluster left without a primary', () => {
  let tc: TestCluster;
  let blocker: Server | null = null;
  before(async () => {
    tc = await makeCluster(bins, {
      replicas: 0,
      extra: (t) => t.replace('ttl: 10', 'ttl: 3'),
    });
    const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
  });
  after(async () => {
    await new Promise((r) => (blocker ? blocker.close(r) : r(undefined)));
    await tc?.cleanup();
  });

  const history = async () => {
    const res = await fetch(`http://127.0.0.1:${tc.cluster.config.http.port}/ha/history`);
    return ((await res.json()) as { events: { event: string; at: string }[] }).events;
  };

  test('a primary that cannot start is retried with back-off, and the same failure is not written every cycle', async () => {
    const s0n0 = tc.cluster.nodes()[0]!;
    const pid = runningPid(tc.cluster.paths('s0n0').pgdata)!;
    // Its port taken by something else: every start fails the same way, and nothing changes.
    process.kill(pid, 'SIGKILL');
    await until('the postmaster gone', () => Promise.resolve(!pidAlive(pid)), 10_000);
    blocker = await listen(s0n0.port);
    await until(
      'a failed start of the primary',
      async () => (await history()).some((e) => e.event === 'start_primary_failed'),
      60_000,
    );
    const before = (await history()).length;
    await new Promise((r) => setTimeout(r, 15_000));
    const written = (await history()).length - before;
    console.log(`# a primary that cannot start: ${written} history events written in 15 s`);
    // 60 cycles of 250 ms: one event per cycle before; now the first failure only, then back-off
    // and the same failure is not written again.
    assert.ok(
      written <= 3,
      `${written} events in 15 s:\n${JSON.stringify((await history()).slice(-10), null, 1)}`,
    );
    // Once the port is free again, the primary is started again (within the back-off's cap).
    await new Promise((r) => blocker!.close(r));
    blocker = null;
    await until(
      'the primary running again',
      async () => (await cli(['status', '-c', tc.file], tc.env)).code === 0,
      90_000,
    );
  });
});
