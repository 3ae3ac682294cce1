/**
 * HAProxy in front of the demo's nodes, for the read scenario's comparison: the HAProxy installed
 * on this machine (tools.ts finds it) in TCP mode, one listener balancing connections round-robin
 * over the primary and the replicas it is given — the same nodes as the proxy's last stage — with
 * plain TCP health checks (no node fails during that scenario), the timeouts of the configuration
 * `pgscale haproxy-config` writes (docs/haproxy.md). Run in the foreground as the service user when
 * the demo runs as root, on a spare port of the cluster's block; its files live in the cluster's
 * directory and go with it.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serviceUser } from '../cluster/run-as.js';
import { waitAccepting } from './cluster.js';
import type { DemoCluster, StandaloneProxy } from './cluster.js';
import { startDaemon } from './daemon.js';

/** `HAProxy version 2.6.12-1+deb12u4` → `HAProxy 2.6.12`, or null when it does not answer. */
export function haproxyVersion(path: string): string | null {
  const r = spawnSync(path, ['-v'], { encoding: 'utf8', timeout: 10_000 });
  const m = /HAProxy version (\S+?)(?:-|\s)/.exec(r.stdout ?? '');
  return r.status === 0 && m ? `HAProxy ${m[1]}` : null;
}

/** haproxy.cfg: one TCP listener on `port`, round-robin over `servers`. */
export function haproxyReadCfg(
  port: number,
  servers: readonly { name: string; host: string; port: number }[],
): string {
  return [
    'global',
    '    maxconn 2000',
    '',
    'defaults',
    '    mode tcp',
    '    retries 2',
    '    timeout connect 4s',
    '    timeout client 30m',
    '    timeout server 30m',
    '    timeout check 5s',
    '',
    'listen reads',
    `    bind 127.0.0.1:${port}`,
    '    balance roundrobin',
    ...servers.map((s) => `    server ${s.name} ${s.host}:${s.port} check inter 2s`),
    '',
  ].join('\n');
}

/** Starts HAProxy (`path`) over `servers`; resolves once a query goes through it. */
export async function startHaproxy(
  cluster: DemoCluster,
  path: string,
  servers: readonly { name: string; host: string; port: number }[],
): Promise<StandaloneProxy> {
  const port = cluster.takePort();
  const dir = join(cluster.dir, `haproxy-${port}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyReadCfg(port, servers), { mode: 0o600 });
  const u = serviceUser();
  if (u) for (const f of [dir, cfg]) chownSync(f, u.uid, u.gid);
  const d = startDaemon(cluster, {
    name: 'haproxy',
    file: path,
    args: ['-f', cfg, '-db'],
    log: join(dir, 'haproxy.log'),
    cwd: dir,
    asService: true,
  });
  const endpoint = { ...cluster.endpoint(), port };
  const stop = () => d.stop(true); // nothing to drain: the reads are over
  await waitAccepting(
    endpoint,
    'HAProxy',
    () => d.exited(),
    d.log,
    stop,
    () => void d.stop(true),
  );
  return { endpoint, pid: d.pid, stop };
}
