/**
 * Child processes the benchmark owns (PgBouncer, pgscale's proxy): started in the foreground as
 * our children, optionally as the unprivileged service user, with stdout/stderr kept in a log
 * file; stopped with SIGTERM, then SIGKILL if they linger; registered for cleanup so that an
 * exception or Ctrl-C never leaves one behind. Also: free loopback ports, and waiting until a
 * server accepts an authenticated connection.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import pg from 'pg';
import { onCleanup } from './cleanup.js';

export interface Daemon {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Set once the process has exited. */
  exited: { code: number | null; signal: NodeJS.Signals | null } | null;
  stop(): Promise<void>;
  logTail(lines?: number): string;
}

export interface DaemonOptions {
  name: string;
  file: string;
  args: string[];
  logFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  user?: { uid: number; gid: number } | null;
}

export function startDaemon(o: DaemonOptions): Daemon {
  const fd = openSync(o.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(o.file, o.args, {
      cwd: o.cwd ?? '/',
      env: o.env ?? process.env,
      stdio: ['ignore', fd, fd],
      ...(o.user ? { uid: o.user.uid, gid: o.user.gid } : {}),
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`could not start ${o.name} (${o.file})`);
  const pid = child.pid;
  const exitedP = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      d.exited = { code, signal };
      resolve();
    });
    child.on('error', (e) => {
      d.exited ??= { code: -1, signal: null };
      process.stderr.write(`bench: ${o.name}: ${e.message}\n`);
      resolve();
    });
  });
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  };
  const stop = async () => {
    if (!d.exited) {
      kill('SIGTERM');
      const killer = setTimeout(() => kill('SIGKILL'), 10_000);
      await exitedP;
      clearTimeout(killer);
    }
    forget();
  };
  const forget = onCleanup(`${o.name} (pid ${pid})`, stop, () => {
    if (!d.exited) kill('SIGKILL');
  });
  const d: Daemon = {
    pid,
    child,
    exited: null,
    stop,
    logTail: (lines = 10) => {
      try {
        return readFileSync(o.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '(no log)';
      }
    },
  };
  return d;
}

/** A port nothing listens on right now on 127.0.0.1 (the kernel's choice). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

export interface Login {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** Resolves once `SELECT 1` succeeds through host:port; fails early if the daemon exits. */
export async function waitAccepting(login: Login, daemon: Daemon | null, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (daemon?.exited) {
      throw new Error(
        `exited (${daemon.exited.signal ?? `code ${daemon.exited.code}`}) before accepting connections:\n${daemon.logTail()}`,
      );
    }
    const c = new pg.Client({ ...login, connectionTimeoutMillis: 2000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      return;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
      await c.end().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `not accepting connections after ${timeoutMs} ms (${last})${daemon ? `:\n${daemon.logTail()}` : ''}`,
  );
}
