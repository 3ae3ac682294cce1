/**
 * One pg_regress run of the parallel schedule against host:port, as `make installcheck` runs it
 * (--inputdir, --dlpath, --schedule=parallel_schedule, --max-concurrent-tests=20, the database
 * `regression` dropped and created anew), and what came of it: each test's status from
 * pg_regress's output and each failing test's diff, cut out of regression.diffs. pg_regress runs
 * as us (psql reads the password from a private PGPASSFILE, never from the command line); its
 * output directory belongs to PostgreSQL's service user, because the server itself writes into
 * results/ (COPY … TO a file). A run that exceeds its time limit is killed with its psql children.
 */
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cleanEnv, ensureOwnedDir } from '../src/cluster/run-as.js';
import { onCleanup } from './cleanup.js';
import type { RegressSource } from './regress-source.js';
import { workDir, writePrivate } from './targets.js';

export interface RegressTarget {
  host: string;
  port: number;
  user: string;
  password: string;
}

export type TestStatus = 'ok' | 'failed' | 'ignored';

export interface RegressOutcome {
  /** Every test of the schedule pg_regress reported, in order, with its status. */
  tests: { name: string; status: TestStatus }[];
  passed: number;
  failed: string[];
  exitCode: number | null;
  seconds: number;
  /** Set when pg_regress could not run the schedule (e.g. it could not create the database). */
  error: string | null;
  /** Per failing test, its diff (expected vs. result), keyed by test name. */
  diffs: Record<string, string>;
}

const LINE = /^\s*(?:test\s+)?([\w.-]+)\s+\.\.\.\s+(ok|FAILED|failed \(ignored\))/;

/** Statuses from pg_regress's stdout ("test x ... ok 12 ms", "     y ... FAILED 40 ms"). */
export function parseRegressOutput(out: string): { name: string; status: TestStatus }[] {
  const tests: { name: string; status: TestStatus }[] = [];
  for (const l of out.split('\n')) {
    const m = LINE.exec(l);
    if (!m) continue;
    tests.push({ name: m[1]!, status: m[2] === 'ok' ? 'ok' : m[2] === 'FAILED' ? 'failed' : 'ignored' });
  }
  return tests;
}

/** regression.diffs cut into one diff per test (pg_regress writes "diff -U3 …/expected/x.out …/results/x.out"). */
export function splitDiffs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const parts = text.split(/^(?=diff )/m);
  for (const p of parts) {
    const m = /^diff [^\n]*\/results\/([\w.-]+)\.out/.exec(p);
    if (m) out[m[1]!] = (out[m[1]!] ?? '') + p;
  }
  return out;
}

/** The first changed lines of a diff: a hint of why a test failed, for the report. */
export function diffExcerpt(diff: string, lines = 8): string[] {
  return diff
    .split('\n')
    .filter((l) => /^[-+]/.test(l) && !/^(---|\+\+\+) /.test(l))
    .slice(0, lines);
}

export async function runRegress(
  src: RegressSource,
  psqlDir: string,
  target: RegressTarget,
  saveDir: string,
  timeoutMs: number,
): Promise<RegressOutcome> {
  const work = workDir('pgscale-regress-', null);
  const outDir = join(work.dir, 'out');
  // Searchable (not readable) by the service user, which must reach outDir below it.
  chmodSync(work.dir, 0o711);
  // The server writes into results/ (COPY … TO): owned by its service user, as is outDir.
  ensureOwnedDir(outDir, 0o755);
  ensureOwnedDir(join(outDir, 'results'), 0o755);
  const passFile = join(work.dir, 'pgpass');
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  writePrivate(passFile, `*:*:*:${esc(target.user)}:${esc(target.password)}\n`, null);
  const args = [
    `--inputdir=${src.inputDir}`,
    `--outputdir=${outDir}`,
    `--bindir=${psqlDir}`,
    `--dlpath=${src.dlPath}`,
    `--schedule=${join(src.inputDir, 'parallel_schedule')}`,
    '--max-concurrent-tests=20',
    `--host=${target.host}`,
    `--port=${target.port}`,
    `--user=${target.user}`,
  ];
  const env: NodeJS.ProcessEnv = { ...cleanEnv(), PGPASSFILE: passFile };
  for (const k of ['PGDATABASE', 'PGOPTIONS', 'PGPASSWORD', 'PGSERVICE', 'PGSSLMODE', 'PGCLIENTENCODING'])
    delete env[k];
  const started = Date.now();
  let stdout = '';
  let stderr = '';
  const child = spawn(src.pgRegress, args, {
    cwd: outDir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so that a timeout or Ctrl-C ends its psql children too.
    detached: true,
  });
  const pid = child.pid!;
  const killGroup = () => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  const forget = onCleanup(`pg_regress (pid ${pid})`, () => Promise.resolve(killGroup()), killGroup);
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    process.stderr.write(d);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, timeoutMs);
  const exitCode = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(timer);
  forget();
  const seconds = Math.round((Date.now() - started) / 100) / 10;

  const tests = parseRegressOutput(stdout);
  const failed = tests.filter((t) => t.status === 'failed').map((t) => t.name);
  const diffFile = join(outDir, 'regression.diffs');
  const diffs = existsSync(diffFile) ? splitDiffs(readFileSync(diffFile, 'utf8')) : {};
  mkdirSync(saveDir, { recursive: true });
  writeFileSync(join(saveDir, 'pg_regress.out'), `${stdout}${stderr ? `\n--- stderr ---\n${stderr}` : ''}`);
  if (existsSync(diffFile)) cpSync(diffFile, join(saveDir, 'regression.diffs'));
  for (const [name, d] of Object.entries(diffs)) writeFileSync(join(saveDir, `${name}.diff`), d);
  work.remove();

  let error: string | null = null;
  if (timedOut) error = `pg_regress did not finish within ${timeoutMs / 1000} s and was killed`;
  else if (exitCode !== 0 && failed.length === 0)
    error = `pg_regress exited ${exitCode}: ${(stderr || stdout).trim().split('\n').slice(-5).join(' | ')}`;
  return {
    tests,
    passed: tests.filter((t) => t.status === 'ok').length,
    failed,
    exitCode,
    seconds,
    error,
    diffs,
  };
}

/** The directory holding psql, for pg_regress's --bindir. */
export function psqlDirOf(psql: string): string {
  return dirname(psql);
}
