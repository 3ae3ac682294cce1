/**
 * TCP reachability between namespace hosts (netns-hosts.ts), for tests of the harness itself and
 * of faults: `listen()` starts a tiny TCP server on a host (or in the test process, for the root
 * namespace), `probe()` connects from a host (or from the test process) and says what happened:
 * 'ok', the connection error's code (ECONNREFUSED, ENETUNREACH, …) or 'timeout' (a cut link or a
 * DROP rule: nothing answers).
 */
import { createConnection, createServer } from 'node:net';
import type { Server } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import type { Host } from './netns-hosts.js';

/** 'ok', 'timeout', or the connection error's code. */
export type ProbeResult = string;

const PROBE_SCRIPT = `
const [addr, port, ms] = process.argv.slice(1);
const s = require('node:net').createConnection({ host: addr, port: Number(port) });
const done = (r) => { process.stdout.write(r); s.destroy(); process.exit(0); };
s.setTimeout(Number(ms), () => done('timeout'));
s.on('connect', () => done('ok'));
s.on('error', (e) => done(e.code || e.message));
`;

/** Connects to addr:port from `from` (null: the test process, in the root namespace). */
export async function probe(
  from: Host | null,
  addr: string,
  port: number,
  timeoutMs = 1000,
): Promise<ProbeResult> {
  if (from) {
    const r = await from.run(process.execPath, ['-e', PROBE_SCRIPT, addr, String(port), String(timeoutMs)]);
    return r.stdout.trim();
  }
  return new Promise((resolve) => {
    const s = createConnection({ host: addr, port });
    const done = (r: ProbeResult) => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(timeoutMs, () => done('timeout'));
    s.on('connect', () => done('ok'));
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

export interface Listener {
  close(): Promise<void>;
}

/** A TCP server that accepts and closes, on `host`'s address (null: on `addr` in the test process). */
export async function listen(host: Host | null, port: number, addr = host?.addr ?? ''): Promise<Listener> {
  if (!host) {
    const server: Server = createServer((s) => s.end());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, addr, resolve);
    });
    return { close: () => new Promise((resolve) => server.close(() => resolve())) };
  }
  const script = `require('node:net').createServer((s) => s.end()).listen(${port}, ${JSON.stringify(addr)}, () => console.log('listening'));`;
  const child: ChildProcess = host.spawn(process.execPath, ['-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) resolve();
    });
    child.once('exit', (code) =>
      reject(new Error(`listener on ${host.toString()}:${port} exited ${code}: ${err}`)),
    );
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}
