/**
 * `pgscale up --detach`: starts the controller as a background process (`pgscale controller -c
 * FILE`, in its own session, stdout and stderr appended to <data_dir>/logs/controller.log) and
 * waits until its HTTP API answers GET /health with its pid. Meanwhile the cluster's progress
 * lines are echoed from the log. If the controller exits first, its last log lines are shown.
 */
import { spawn } from 'node:child_process';
import { health } from '../web/health-client.js';
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Cluster } from '../cluster/cluster.js';
import { ControllerError } from '../controller/controller-file.js';
import { ErrorCodes } from '../errors.js';

const packageRoot = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(packageRoot, 'bin', 'pgscale.js');

export function controllerLogPath(dataDir: string): string {
  return join(dataDir, 'logs', 'controller.log');
}

export interface Started {
  pid: number;
  log: string;
}

export async function startInBackground(
  cluster: Cluster,
  timeoutS: number,
  echo: (line: string) => void,
): Promise<Started> {
  const log = controllerLogPath(cluster.dataDir);
  mkdirSync(dirname(log), { recursive: true });
  const follower = new LogFollower(log);
  const fd = openSync(log, 'a', 0o640);
  let child;
  try {
    child = spawn(
      process.execPath,
      [BIN, 'controller', '-c', cluster.loaded.file, '--timeout', String(timeoutS)],
      { detached: true, stdio: ['ignore', fd, fd], cwd: packageRoot, env: process.env },
    );
  } finally {
    closeSync(fd);
  }
  let exited: string | null = null;
  child.once('exit', (code, signal) => (exited = signal ? `killed by ${signal}` : `exit code ${code}`));
  child.once('error', (e) => (exited = `could not start: ${e.message}`));
  child.unref();
  const pid = child.pid ?? -1;
  const { listen, port } = cluster.config.http;
  const host = listen === '0.0.0.0' ? '127.0.0.1' : listen === '::' ? '::1' : listen;
  // Provisioning (initdb, clones) comes before the wait for streaming that --timeout bounds.
  const deadline = performance.now() + (timeoutS + 120) * 1000;
  for (;;) {
    follower.poll(echo);
    if (exited !== null) {
      follower.poll(echo);
      throw new ControllerError(
        ErrorCodes.INTERNAL,
        `the controller stopped during start-up (${String(exited)}). Last lines of ${log}:\n${follower.tail(15)}`,
      );
    }
    const h = await health(host, port);
    if (h?.status === 'ok' && h.pid === pid) return { pid, log };
    if (performance.now() > deadline) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
      throw new ControllerError(
        ErrorCodes.TIMEOUT,
        `the controller (pid ${pid}) was not ready after ${timeoutS + 120} s; asked it to stop. Last lines of ${log}:\n${follower.tail(15)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Reads what the controller appends to its log: progress to echo, and the tail on failure. */
class LogFollower {
  private offset: number;
  private partial = '';
  private readonly lines: string[] = [];

  constructor(private readonly file: string) {
    this.offset = existsSync(file) ? statSync(file).size : 0;
  }

  poll(echo: (line: string) => void): void {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch {
      return;
    }
    try {
      // The controller rotated its log (copy, then truncate): read the new one from its start.
      if (statSync(this.file).size < this.offset) this.offset = 0;
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        this.partial += buf.subarray(0, n).toString('utf8');
      }
    } finally {
      closeSync(fd);
    }
    const parts = this.partial.split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) {
      if (!raw.trim()) continue;
      const line = humanLine(raw);
      this.lines.push(line.text);
      if (this.lines.length > 200) this.lines.shift();
      if (line.progress) echo(line.text);
    }
  }

  tail(n: number): string {
    const rest = this.partial.trim() ? [this.partial] : [];
    return [...this.lines, ...rest]
      .slice(-n)
      .map((l) => `  ${l}`)
      .join('\n');
  }
}

const LEVELS: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/** A pino JSON line as a person reads it; cluster progress lines are flagged for echoing. */
function humanLine(raw: string): { text: string; progress: boolean } {
  try {
    const o = JSON.parse(raw) as { level?: number; component?: string; msg?: string };
    if (typeof o.msg !== 'string') return { text: raw, progress: false };
    if (o.component === 'cluster' && o.level === 30) return { text: o.msg, progress: true };
    return {
      text: `${LEVELS[o.level ?? 30] ?? o.level} ${o.component ? `${o.component}: ` : ''}${o.msg}`,
      progress: false,
    };
  } catch {
    return { text: raw, progress: false };
  }
}
