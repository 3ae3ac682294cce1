/**
 * The network-namespace hosts harness itself (netns-hosts.ts): who reaches whom (hosts each
 * other and the root namespace, nothing outside), a whole-host kill that takes the processes'
 * children too, iptables blocks limited to one peer and some ports, the sweep of a killed run's
 * leftovers that keeps a live run's, and PostgreSQL run as the service user inside a namespace on
 * the host's address: reachable from the root namespace and from another host, not after cut().
 * Skipped, saying why, without root or `ip netns`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { ensureOwnedDir, serviceUser } from '../src/cluster/run-as.js';
import { binarySets, repoRoot, until } from './harness.js';
import { listen, probe } from './netns-probe.js';
import { NetHosts, netnsSkipReason } from './netns-hosts.js';
import type { Host } from './netns-hosts.js';

const skip = netnsSkipReason();
const PORT = 7001;
let net: NetHosts;
let h1: Host, h2: Host, h3: Host;

before(async () => {
  if (skip) return;
  net = await NetHosts.create({ hosts: 3, prefix: 'pgth' });
  [h1, h2, h3] = net.hosts as [Host, Host, Host];
});
after(async () => {
  await net?.destroy();
});

describe('network-namespace hosts', { skip }, () => {
  test('hosts reach each other and the root namespace, and nothing else', async () => {
    const l2 = await listen(h2, PORT);
    // The root namespace's ports are shared with everything else on the machine.
    const rootPort = await findFreePortBlock(1);
    const root = await listen(null, rootPort, net.bridgeAddr);
    try {
      assert.equal(await probe(h1, h2.addr, PORT), 'ok', 'host to host');
      assert.equal(await probe(null, h2.addr, PORT), 'ok', 'root namespace to host');
      assert.equal(await probe(h3, net.bridgeAddr, rootPort), 'ok', 'host to the root namespace');
      assert.equal(await probe(h1, h3.addr, PORT), 'ECONNREFUSED', 'a host with nothing on the port');
      // No default route in a namespace: an address outside the test network is unreachable.
      assert.equal(await probe(h1, '192.0.2.1', 80), 'ENETUNREACH');
      assert.equal(await probe(h1, '127.0.0.1', PORT), 'ECONNREFUSED', 'loopback is the host’s own');
    } finally {
      await l2.close();
      await root.close();
    }
  });

  test('kill() kills every process of the host at once, children included; other hosts live on', async () => {
    const parent = h1.spawn('/bin/sh', ['-c', 'sleep 300 & sleep 300 & wait']);
    const other = h2.spawn('/bin/sleep', ['300']);
    try {
      await until('the three processes', () => Promise.resolve(h1.pids().length >= 3));
      const pids = h1.pids();
      const exited = new Promise<NodeJS.Signals | null>((r) => parent.once('exit', (_c, sig) => r(sig)));
      await h1.kill();
      assert.deepEqual(h1.pids(), []);
      assert.equal(await exited, 'SIGKILL');
      for (const pid of pids) assert.ok(!isAlive(pid), `pid ${pid} survived`);
      assert.equal(other.exitCode, null, 'the other host is untouched');
      assert.deepEqual(h2.pids(), [other.pid]);
    } finally {
      other.kill('SIGKILL');
    }
  });

  test('block(peer, ports) drops only that peer and those ports, both ways; unblock() restores', async () => {
    const a = await listen(h2, PORT);
    const b = await listen(h2, PORT + 1);
    const c = await listen(h1, PORT);
    try {
      h1.block(h2, [PORT]);
      assert.equal(await probe(h1, h2.addr, PORT, 500), 'timeout', 'to the blocked port');
      assert.equal(await probe(h2, h1.addr, PORT, 500), 'timeout', 'from the peer to the same port here');
      assert.equal(await probe(h1, h2.addr, PORT + 1), 'ok', 'another port');
      assert.equal(await probe(h3, h2.addr, PORT), 'ok', 'another host');
      h1.block(h2);
      assert.equal(await probe(h1, h2.addr, PORT + 1, 500), 'timeout', 'a whole-peer block');
      h1.unblock(h2);
      assert.equal(await probe(h1, h2.addr, PORT + 1), 'ok', 'unblock(peer) lifts only that block');
      assert.equal(await probe(h1, h2.addr, PORT, 500), 'timeout');
      h1.unblock();
      assert.equal(await probe(h1, h2.addr, PORT), 'ok');
      assert.equal(await probe(h2, h1.addr, PORT), 'ok');
    } finally {
      h1.unblock();
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  test('a killed run’s leftovers are swept by the next run; a live run’s are kept', async () => {
    const prefix = 'pgts';
    const script = `
      const { NetHosts } = await import(${JSON.stringify(join(repoRoot, 'test', 'netns-hosts.ts'))});
      const n = await NetHosts.create({ hosts: 2, prefix: '${prefix}' });
      n.host(1).spawn('/bin/sleep', ['300']);
      console.log(JSON.stringify({ run: n.run, dir: n.dir }));
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString()));
      child.once('exit', (code) => reject(new Error(`the run exited (${code}) before it was built`)));
    });
    const dead = JSON.parse(line) as { run: string; dir: string };
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    assert.ok(namespaces().includes(`${dead.run}h1`), 'the killed run left its namespaces');
    const orphans = nsPids(`${dead.run}h1`);
    assert.equal(orphans.length, 1, 'and its process');
    const live = await NetHosts.create({ hosts: 1, prefix });
    try {
      NetHosts.sweep(prefix);
      assert.deepEqual(
        namespaces().filter((n) => n.startsWith(prefix)),
        [`${live.run}h1`],
        'the dead run is swept, the live one kept',
      );
      assert.ok(!links().some((l) => l.startsWith(dead.run)), 'no bridge or veth of the dead run');
      assert.ok(links().includes(`${live.run}br`));
      assert.ok(!existsSync(dead.dir), 'its temporary directory is removed');
      assert.ok(!isAlive(orphans[0]!), 'its process is killed');
    } finally {
      await live.destroy();
    }
    assert.ok(!namespaces().some((n) => n.startsWith(prefix)) && !links().some((l) => l.startsWith(prefix)));
  });

  test('PostgreSQL in a namespace as the service user: reachable from the root and another host, not after cut()', async () => {
    const bins = binarySets()[0];
    assert.ok(bins, 'no PostgreSQL binaries found');
    const data = join(net.dir, 'pg');
    ensureOwnedDir(data);
    await h3.run(bins.initdb, ['-D', data, '-A', 'trust', '-U', 'postgres', '-N'], { asPgUser: true });
    appendFileSync(
      join(data, 'postgresql.conf'),
      `listen_addresses = '${h3.addr}'\nport = 5432\nunix_socket_directories = '${data}'\nfsync = off\n`,
    );
    appendFileSync(join(data, 'pg_hba.conf'), `host all all ${net.net}.0/24 trust\n`);
    const log = join(data, 'server.log');
    await h3.run(bins.pgCtl, ['-D', data, '-l', log, '-w', '-t', '60', 'start'], { asPgUser: true });
    const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    assert.ok(h3.pids().includes(pid), 'the postmaster runs in the host’s namespace');
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    assert.equal(Number(uid), serviceUser()?.uid ?? process.getuid?.(), 'as the service user');
    const query = async (connectionTimeoutMillis = 10_000) => {
      const c = new pg.Client({
        host: h3.addr,
        port: 5432,
        user: 'postgres',
        database: 'postgres',
        connectionTimeoutMillis,
      });
      await c.connect();
      try {
        const r = await c.query<{ addr: string }>('SELECT host(inet_server_addr()) AS addr');
        return r.rows[0]!;
      } finally {
        await c.end();
      }
    };
    assert.equal((await query()).addr, h3.addr, 'from the root namespace, served on the host’s address');
    const psql = bins.psql ?? 'psql';
    const viaHost = (h: Host, timeoutS = 10) =>
      h.run(psql, ['-h', h3.addr, '-U', 'postgres', '-d', 'postgres', '-Atc', 'SELECT 42'], {
        env: { PGCONNECT_TIMEOUT: String(timeoutS) },
        allowFail: true,
      });
    assert.equal((await viaHost(h1)).stdout.trim(), '42', 'from another host');
    h3.cut();
    try {
      await assert.rejects(query(1000), /timeout/, 'the root namespace cannot connect after cut()');
      const r = await viaHost(h1, 2);
      assert.notEqual(r.code, 0, 'another host cannot connect after cut()');
      assert.match(r.stderr, /timeout|timed out/i);
    } finally {
      h3.heal();
    }
    // The link comes back up and the neighbours are learnt again: a moment, not a fixed time.
    await until('PostgreSQL to be reachable after heal()', () => query(1000).then((r) => r.addr === h3.addr));
    await h3.kill();
    assert.deepEqual(h3.pids(), []);
  });
});

function isAlive(pid: number): boolean {
  try {
    // A zombie is dead for us: its state is Z.
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function namespaces(): string[] {
  return sh(['netns', 'list']).map((l) => l.split(' ')[0]!);
}

function links(): string[] {
  return sh(['-o', 'link', 'show']).map((l) => /^\d+: ([^:@\s]+)/.exec(l)?.[1] ?? '');
}

function nsPids(ns: string): number[] {
  return sh(['netns', 'pids', ns]).map(Number);
}

function sh(args: string[]): string[] {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}
