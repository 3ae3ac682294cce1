/**
 * The cluster's generated passwords. They live in `<data_dir>/secrets.json`, readable only by its
 * owner, and reach PostgreSQL tools only through files (a libpq passfile owned by the service user,
 * initdb's --pwfile): never on a command line, in a log or in status output. Roles are created
 * with a SCRAM-SHA-256 verifier computed here, so not even the server's statement log sees a
 * password.
 */
import { randomBytes } from 'node:crypto';
import { buildScramSecret, formatScramSecret } from '../protocol/scram-secret.js';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chownToService, ensureOwnedDir } from './run-as.js';

export interface Secrets {
  readonly superuser: string;
  readonly replicator: string;
  readonly app: string;
  /** The auth role's (the proxy's auth query inside `up`); added at the first `up` that needs it. */
  readonly auth?: string;
  /** Generated passwords of users: declared without a password_file, by name. */
  readonly users?: Readonly<Record<string, string>>;
}

export const REPLICATION_USER = 'replicator';

const newPassword = () => randomBytes(24).toString('base64url');

export function secretsFile(dataDir: string): string {
  return join(dataDir, 'secrets.json');
}

export function readSecrets(dataDir: string): Secrets | null {
  const f = secretsFile(dataDir);
  if (!existsSync(f)) return null;
  return JSON.parse(readFileSync(f, 'utf8')) as Secrets;
}

export function loadOrCreateSecrets(dataDir: string): Secrets {
  const existing = readSecrets(dataDir);
  if (existing) return existing;
  const s: Secrets = { superuser: newPassword(), replicator: newPassword(), app: newPassword() };
  writePrivate(secretsFile(dataDir), JSON.stringify(s, null, 2) + '\n', false);
  return s;
}

/**
 * Adds the passwords `up` needs and secrets.json lacks (the auth role's, each generated user's),
 * rewriting the file (0600) only when something was added; existing passwords never change.
 */
export function ensureSecrets(dataDir: string, s: Secrets, generatedUsers: readonly string[]): Secrets {
  const users = { ...(s.users ?? {}) };
  let added = s.auth === undefined;
  for (const u of generatedUsers) {
    if (users[u] === undefined) {
      users[u] = newPassword();
      added = true;
    }
  }
  if (!added) return s;
  const next: Secrets = { ...s, auth: s.auth ?? newPassword(), users };
  writePrivate(secretsFile(dataDir), JSON.stringify(next, null, 2) + '\n', false);
  return next;
}

/** Directory of files the service user reads (passfile); mode 0700, owned by it. */
export function serviceSecretsDir(dataDir: string): string {
  return join(dataDir, 'secrets');
}

/** The libpq passfile used by pg_basebackup and by standbys' primary_conninfo. */
export function passfilePath(dataDir: string): string {
  return join(serviceSecretsDir(dataDir), 'pgpass');
}

export function writePassfile(dataDir: string, superuser: string, s: Secrets): string {
  ensureOwnedDir(serviceSecretsDir(dataDir), 0o700);
  const p = passfilePath(dataDir);
  writePrivate(p, `*:*:*:${REPLICATION_USER}:${s.replicator}\n*:*:*:${superuser}:${s.superuser}\n`, true);
  return p;
}

/** initdb's --pwfile; the caller removes it once initdb is done. */
export function writeInitdbPwfile(dataDir: string, s: Secrets): string {
  ensureOwnedDir(serviceSecretsDir(dataDir), 0o700);
  const p = join(serviceSecretsDir(dataDir), 'initdb-pw');
  writePrivate(p, s.superuser + '\n', true);
  return p;
}

export function removeFile(p: string): void {
  rmSync(p, { force: true });
}

/** Writes a 0600 file atomically (temp name, then rename); `forService`: owned by the service user. */
export function writePrivate(path: string, text: string, forService: boolean): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  if (forService) chownToService(tmp);
  renameSync(tmp, path);
}

/** PostgreSQL's SCRAM-SHA-256 verifier for a password (computed off the event loop). */
export async function scramVerifier(password: string): Promise<string> {
  return formatScramSecret(await buildScramSecret(password));
}

/** Quotes a SQL string literal. */
export function sqlLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

export function sqlIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}
