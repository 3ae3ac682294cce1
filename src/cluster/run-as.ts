/**
 * Runs PostgreSQL's binaries as the right operating-system user. PostgreSQL refuses to run as
 * root, so when pgscale itself runs as root every server-side process (initdb, pg_ctl, postgres,
 * pg_basebackup, pg_rewind) runs as a dedicated unprivileged user (`pgscale`, or PGSCALE_RUN_AS),
 * created when missing, and the files it must write are owned by it. Otherwise everything runs as
 * the invoking user. Command lines never carry secrets: passwords go through files.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { ClusterError, ErrorCodes } from '../errors.js';

export interface OsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Its home directory: libpq looks for ~/.postgresql/ there, not in ours. */
  readonly home: string;
}

let cached: OsUser | null | undefined;

function lookup(name: string): OsUser | null {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return null;
  const home = spawnSync('getent', ['passwd', name], { encoding: 'utf8' }).stdout?.split(':')[5]?.trim();
  return { name, uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()), home: home || '/nonexistent' };
}

/** The user PostgreSQL runs as, or null to run as ourselves (we are not root). */
export function serviceUser(): OsUser | null {
  if (cached !== undefined) return cached;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return (cached = null);
  const name = process.env.PGSCALE_RUN_AS ?? 'pgscale';
  let user = lookup(name);
  if (!user) {
    const r = spawnSync(
      'useradd',
      [
        '--system',
        '--user-group',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        '/usr/sbin/nologin',
        name,
      ],
      { encoding: 'utf8' },
    );
    user = lookup(name);
    if (!user) {
      throw new ClusterError(
        ErrorCodes.ROOT_USER,
        `pgscale runs as root, and PostgreSQL refuses to run as root; creating the unprivileged user "${name}" ` +
          `failed (${(r.stderr || r.error?.message || 'useradd not available').trim()}). Run pgscale as an ordinary ` +
          `user, or create a user and set PGSCALE_RUN_AS to its name.`,
      );
    }
  }
  if (user.uid === 0) {
    throw new ClusterError(
      ErrorCodes.ROOT_USER,
      `PGSCALE_RUN_AS=${name} is root; name an unprivileged user.`,
    );
  }
  return (cached = user);
}

/** Creates a directory (and parents) owned by the service user with the given mode. */
export function ensureOwnedDir(path: string, mode = 0o700): void {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  const u = serviceUser();
  if (u) chownSync(path, u.uid, u.gid);
}

export function chownToService(path: string): void {
  const u = serviceUser();
  if (u) chownSync(path, u.uid, u.gid);
}

/** Whether the service user can enter the directory (every ancestor must be searchable). */
export function serviceCanReach(dir: string): boolean {
  const u = serviceUser();
  if (!u) return true;
  const r = spawnSync('/bin/sh', ['-c', 'cd "$1"', 'sh', dir], { uid: u.uid, gid: u.gid });
  return r.status === 0;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** Run detached in its own session (for servers that must outlive us and ignore our Ctrl-C). */
  detached?: boolean;
  /** Do not throw on a non-zero exit. */
  allowFail?: boolean;
}

/** Runs a PostgreSQL binary as the service user and collects its output. */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const u = serviceUser();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd ?? '/',
      // The service user's own HOME: libpq (a standby's WAL receiver, pg_basebackup) reads
      // ~/.postgresql/postgresql.crt when the server asks for a client certificate, and fails
      // on one it may not open (root's).
      env: { ...cleanEnv(), ...(u ? { HOME: u.home, USER: u.name, LOGNAME: u.name } : {}), ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: opts.detached ?? false,
      ...(u ? { uid: u.uid, gid: u.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-200_000)));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-200_000)));
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            child.kill('SIGKILL');
          }, opts.timeoutMs)
        : null;
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new ClusterError(ErrorCodes.BINARY_FAILED, `could not run ${file}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const res = { code: code ?? -1, stdout, stderr };
      if ((code === 0 && !signal) || opts.allowFail) resolvePromise(res);
      else {
        const name = file.split('/').pop() ?? file;
        const tail = (stderr || stdout).trim().split('\n').slice(-6).join('\n');
        reject(
          new ClusterError(
            ErrorCodes.BINARY_FAILED,
            `${name} ${signal ? `was killed (${signal})` : `exited with code ${code}`}${tail ? `:\n${tail}` : ''}`,
          ),
        );
      }
    });
  });
}

/** Our environment without libpq variables that would redirect or authenticate our tools. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('PG') && !k.startsWith('PGSCALE_')) continue;
    env[k] = v;
  }
  env.LC_ALL = env.LC_ALL ?? 'C';
  return env;
}
