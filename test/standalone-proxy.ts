/**
 * `pgscale proxy` run as a user runs it, for tests: the CLI in a child process, its output kept,
 * ready once it logs "ready on"; stop() sends SIGTERM and gives the exit code.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot, until } from './harness.js';

export interface Running {
  child: ChildProcess;
  out: () => string;
  /** What it wrote to stderr alone (its log) and to stdout alone. */
  stderr: () => string;
  stdout: () => string;
  stop(): Promise<number | null>;
}

export async function startProxy(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'pgscale.js'), 'proxy', ...args], {
    env: { ...process.env, PGSCALE_DEV: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => ((text += d.toString()), (stdout += d.toString())));
  child.stderr.on('data', (d: Buffer) => ((text += d.toString()), (stderr += d.toString())));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await until(
    'the proxy to be ready',
    () => Promise.resolve(text.includes('ready on') || child.exitCode !== null),
    30_000,
  );
  if (child.exitCode !== null) throw new Error(`pgscale proxy exited: ${text}`);
  return {
    child,
    out: () => text,
    stderr: () => stderr,
    stdout: () => stdout,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}
