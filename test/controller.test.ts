/**
 * The controller end to end against real PostgreSQL (one build, 1 primary + 1 standby):
 * `up --detach` leaves a background controller whose HTTP API answers; a second `up` is
 * harmless; a standby killed with -9 is noticed and logged (not restarted); `down` stops the
 * controller and the nodes; the HTTP port in use is named as http.port, both before anything
 * starts and when it is taken while the controller starts; a foreground `up` stops cleanly on a
 * signal; no secret reaches the controller's log or its HTTP answers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { binarySets, cli, makeCluster, repoRoot, until, withoutHa } from './harness.js';
import type { TestCluster } from './harness.js';
import { runningPid } from '../src/cluster/instance.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { pidAlive, readControllerFile } from '../src/controller/controller-file.js';

const bins = binarySets()[0]!;

interface Reply {
  code: number;
  type: string;
  body: string;
}

function http(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () =>
        resolve({ code: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Something else on the port: accepts connections and closes them at once. */
function listen(port: number): Promise<Server> {
  const srv = createServer((socket) => socket.destroy());
  return new Promise((resolve) => srv.listen(port, '127.0.0.1', () => resolve(srv)));
}

const close = (srv: Server) => new Promise((r) => srv.close(r));

interface StatusJson {
  cluster: string;
  controller: { pid: number; http: { host: string; port: number } } | null;
  nodes: { name: string; role: string; state: string; streaming: boolean }[];
}

describe(`controller with PostgreSQL ${bins.version} (${bins.source})`, () => {
  let tc: TestCluster;
  let port: number;
  let pid: number;
  const log = () => join(tc.cluster.dataDir, 'logs', 'controller.log');
  // A postmaster killed with -9 stays a zombie until its parent (init) reaps it: not running.
  const nodePid = (name: string) => {
    const p = runningPid(tc.cluster.paths(name).pgdata);
    return p !== null && pidAlive(p) ? p : null;
  };

  before(async () => {
    // The controller itself, without high availability (test/ha.test.ts covers it): a killed
    // standby must stay down here.
    tc = await makeCluster(bins, { replicas: 1, extra: withoutHa });
    port = tc.cluster.config.http.port;
  });
  after(async () => {
    await tc.cleanup();
  });

  test('http.port in use at up is named, and nothing is created', async () => {
    const srv = await listen(port);
    try {
      const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`port ${port} of the HTTP API \\(http\\.port, on 127\\.0\\.0\\.1\\) is already in use`),
      );
      assert.equal(existsSync(tc.cluster.dataDir), false);
    } finally {
      await close(srv);
    }
  });

  test('up --detach leaves a controller whose /health and /status answer', async () => {
    const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const info = readControllerFile(tc.cluster.dataDir);
    assert.ok(info, 'controller.json written');
    pid = info.pid;
    assert.ok(pidAlive(pid), 'the controller outlives the CLI');
    assert.deepEqual(info.http, { host: '127.0.0.1', port });
    assert.match(r.stdout, new RegExp(`controller running in the background: pid ${pid}`));
    assert.match(r.stdout, /s0n1\s+replica\s+streaming/);

    const h = await http(port, '/health');
    assert.equal(h.code, 200);
    assert.match(h.type, /application\/json/);
    assert.deepEqual(JSON.parse(h.body), { status: 'ok', pid, started_at: info.started_at });

    const s = await http(port, '/status');
    assert.equal(s.code, 200);
    const st = JSON.parse(s.body) as StatusJson;
    assert.deepEqual(
      st.nodes.map((n) => [n.name, n.role, n.state]),
      [
        ['s0n0', 'primary', 'running'],
        ['s0n1', 'replica', 'running'],
      ],
    );
    assert.equal(st.controller?.pid, pid);
    // The CLI's `status --json` is the same object.
    const c = await cli(['status', '-c', tc.file, '--json'], tc.env);
    assert.equal(c.code, 0, c.stderr);
    const cj = JSON.parse(c.stdout) as StatusJson;
    assert.deepEqual(Object.keys(cj), Object.keys(st));
    assert.deepEqual(cj.controller, st.controller);
    assert.deepEqual(
      cj.nodes.map((n) => Object.keys(n)),
      st.nodes.map((n) => Object.keys(n)),
    );
  });

  test('/metrics has pgscale_node_up for every node, the lag and the process metrics', async () => {
    const m = await http(port, '/metrics');
    assert.equal(m.code, 200);
    assert.match(m.type, /^text\/plain/);
    assert.match(m.body, /^pgscale_node_up\{node="s0n0",group="0"\} 1$/m);
    assert.match(m.body, /^pgscale_node_is_primary\{node="s0n0",group="0"\} 1$/m);
    assert.match(m.body, /^pgscale_node_up\{node="s0n1",group="0"\} 1$/m);
    assert.match(m.body, /^pgscale_node_is_replica\{node="s0n1",group="0"\} 1$/m);
    assert.match(m.body, /^pgscale_node_is_primary\{node="s0n1",group="0"\} 0$/m);
    assert.match(m.body, /^# TYPE pgscale_proxy_transactions_total counter$/m);
    assert.match(m.body, /^# TYPE pgscale_node_exits_total counter$/m);
    assert.doesNotMatch(m.body, /role="/);
    assert.match(m.body, /^pgscale_replication_lag_bytes\{node="s0n1",group="0"\} \d+$/m);
    assert.match(m.body, /^pgscale_replica_streaming\{node="s0n1",group="0"\} 1$/m);
    assert.match(m.body, /^process_cpu_user_seconds_total \d/m);
    assert.match(m.body, /^nodejs_heap_size_used_bytes \d/m);
  });

  test('/services lists the supervisor, sharding, the proxy, the agents and config; unknown paths are 404 and other methods 405, as JSON', async () => {
    const s = await http(port, '/services');
    assert.equal(s.code, 200);
    const body = JSON.parse(s.body) as { services: { name: string; state: string }[] };
    assert.deepEqual(
      body.services.map((x) => [x.name, x.state]),
      [
        ['supervisor', 'running'],
        ['sharding', 'running'],
        ['proxy', 'running'],
        ['agents', 'running'],
        ['config', 'running'],
      ],
    );
    const nf = await http(port, '/nope');
    assert.equal(nf.code, 404);
    assert.match((JSON.parse(nf.body) as { error: string }).error, /no such endpoint \/nope/);
    const na = await http(port, '/health', 'POST');
    assert.equal(na.code, 405);
    assert.match(na.body, /not allowed/);
  });

  test('a second up --detach is harmless', async () => {
    const pids = [nodePid('s0n0'), nodePid('s0n1')];
    const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`already running \\(pid ${pid}, HTTP API http://127\\.0\\.0\\.1:${port}\\)`),
    );
    assert.match(r.stdout, /s0n0\s+primary\s+running/);
    assert.equal(readControllerFile(tc.cluster.dataDir)?.pid, pid);
    assert.deepEqual([nodePid('s0n0'), nodePid('s0n1')], pids);
    // A foreground up refuses, naming the running controller.
    const f = await cli(['up', '-c', tc.file], tc.env);
    assert.equal(f.code, 1);
    assert.match(f.stderr, new RegExp(`already running \\(pid ${pid}`));
  });

  test('a standby postmaster killed with -9 is noticed and logged, not restarted', async () => {
    const victim = nodePid('s0n1')!;
    process.kill(victim, 'SIGKILL');
    const line = await until(
      'the controller to log the dead node',
      () => {
        const lines = readFileSync(log(), 'utf8').split('\n').filter(Boolean);
        return Promise.resolve(
          lines
            .map((l) => JSON.parse(l) as { node?: string; event?: string; msg: string; pid?: number })
            .find((l) => l.event === 'node_exited'),
        );
      },
      15_000,
    );
    assert.equal(line.node, 's0n1');
    assert.equal(line.pid, victim);
    assert.match(line.msg, /node s0n1 .* is no longer running/);
    const m = await http(port, '/metrics');
    assert.match(m.body, /^pgscale_node_up\{node="s0n1",group="0"\} 0$/m);
    assert.match(m.body, /^pgscale_node_exits_total\{node="s0n1",group="0"\} 1$/m);
    const s = JSON.parse((await http(port, '/services')).body) as {
      services: { status: { events: { node: string; event: string }[] } }[];
    };
    assert.deepEqual(
      s.services[0]!.status.events.map((e) => [e.node, e.event]),
      [['s0n1', 'exited']],
    );
    assert.equal(nodePid('s0n1'), null, 'not restarted');
    assert.equal((await http(port, '/health')).code, 200, 'the controller carries on');
  });

  test('no secret appears in the controller log, controller.json or the HTTP answers', async () => {
    const secrets = readSecrets(tc.cluster.dataDir)!;
    const texts: [string, string][] = [
      ['controller.log', readFileSync(log(), 'utf8')],
      ['controller.json', readFileSync(join(tc.cluster.dataDir, 'controller.json'), 'utf8')],
    ];
    for (const p of ['/health', '/status', '/metrics', '/services'])
      texts.push([p, (await http(port, p)).body]);
    for (const v of [secrets.superuser, secrets.replicator, secrets.app]) {
      for (const [where, text] of texts) assert.ok(!text.includes(v), `a password appears in ${where}`);
    }
  });

  test('down stops the controller and every node', async () => {
    const r = await cli(['down', '-c', tc.file], tc.env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`stopped the controller \\(pid ${pid}\\)`));
    assert.match(r.stdout, /stopped s0n0$/m);
    assert.equal(pidAlive(pid), false);
    assert.equal(existsSync(join(tc.cluster.dataDir, 'controller.json')), false);
    assert.deepEqual([nodePid('s0n0'), nodePid('s0n1')], [null, null]);
    await assert.rejects(http(port, '/health'), /ECONNREFUSED/);
    const again = await cli(['down', '-c', tc.file], tc.env);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /no node was running/);
  });

  test('http.port taken while the controller starts: it stops the nodes again and up shows why', async () => {
    let srv: Server | null = null;
    const from = readFileSync(log(), 'utf8').length;
    const started = cli(['up', '-c', tc.file, '--detach'], tc.env);
    // The controller checks the port first, then brings the cluster up: take the port meanwhile.
    await until(
      'the controller to start the cluster',
      () => Promise.resolve(readFileSync(log(), 'utf8').slice(from).includes('starting the cluster')),
      60_000,
    );
    srv = await listen(port);
    try {
      const r = await started;
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /the controller stopped during start-up \(exit code 1\)/);
      assert.match(r.stderr, new RegExp(`port ${port} of the HTTP API \\(http\\.port`));
      assert.equal(existsSync(join(tc.cluster.dataDir, 'controller.json')), false);
      assert.deepEqual([nodePid('s0n0'), nodePid('s0n1')], [null, null]);
    } finally {
      await close(srv);
    }
  });

  test('a foreground up runs the controller until SIGTERM, then stops cleanly', async () => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'pgscale.js'), 'up', '-c', tc.file], {
      env: { ...process.env, PGSCALE_DEV: '1', ...tc.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.resume();
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await until('the foreground controller', async () => (await http(port, '/health')).code === 200, 60_000);
    assert.equal(readControllerFile(tc.cluster.dataDir)?.pid, child.pid);
    await until('the foreground banner', () => Promise.resolve(stdout.includes('Running in the foreground')));
    assert.match(stdout, /s0n1\s+replica\s+streaming/);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.equal(existsSync(join(tc.cluster.dataDir, 'controller.json')), false);
    assert.deepEqual([nodePid('s0n0'), nodePid('s0n1')], [null, null]);
  });
});
