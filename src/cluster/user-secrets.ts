/**
 * The passwords of the application users: app.user's and each generated user's from
 * secrets.json, a user's password_file read when asked (relative to the config file, first line,
 * so rotating it takes effect at the next `up` or proxy reload). Never logged; an unreadable file
 * is a ConfigError naming the key and the file, not its content.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { appUsers } from '../config/users.js';
import { ConfigError, ErrorCodes } from '../errors.js';
import type { Secrets } from './secrets.js';

/** Users whose passwords pgscale generates (into secrets.users): declared, no file, not app.user. */
export function generatedUsers(loaded: LoadedConfig): string[] {
  return appUsers(loaded.config)
    .filter((u) => u.name !== loaded.config.app.user && u.passwordFile === null)
    .map((u) => u.name);
}

function readPasswordFile(loaded: LoadedConfig, user: string, file: string): string {
  const path = resolve(dirname(loaded.file), file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `users.${user}.password_file: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  const pw = text.split(/\r?\n/)[0] ?? '';
  if (pw === '') {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `users.${user}.password_file: ${path} is empty (its first line is the password)`,
    );
  }
  return pw;
}

/** A user's password, or null when it has none yet (declared since the last `up`). */
export function userPassword(loaded: LoadedConfig, secrets: Secrets, user: string): string | null {
  if (user === loaded.config.app.user) return secrets.app;
  const u = appUsers(loaded.config).find((x) => x.name === user);
  if (!u) return null;
  if (u.passwordFile !== null) return readPasswordFile(loaded, user, u.passwordFile);
  return secrets.users?.[user] ?? null;
}

/** Every application user's password that is known now, by name. */
export function userPasswords(loaded: LoadedConfig, secrets: Secrets): Map<string, string> {
  const out = new Map<string, string>();
  for (const u of appUsers(loaded.config)) {
    const pw = userPassword(loaded, secrets, u.name);
    if (pw !== null) out.set(u.name, pw);
  }
  return out;
}
