/**
 * What a new operator ran into (issue #11, "found by a new operator"): output piped into `head`,
 * `init --port-base` moving every port, port clashes all named at once, and the README's own
 * sequence of commands working as written.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { binarySets, repoRoot, tempDir } from './harness.js';

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
