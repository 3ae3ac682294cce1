/**
 * Where client secrets come from: users given by the embedding program (pgscale up knows the
 * application role's password), a PgBouncer-format userlist.txt, and auth_query run against the
 * server. SCRAM verifiers for plain passwords are derived once (off the event loop) and cached.
 * Secrets never leave this module except to the authentication code.
 */
import { readFileSync } from 'node:fs';
import { parseUserlist } from '../../protocol/userlist.js';
import type { UserSecret } from '../../protocol/userlist.js';
import { classifySecret } from '../../protocol/userlist.js';
import { buildScramSecret } from '../../protocol/scram-secret.js';
import type { ScramSecret } from '../../protocol/scram-secret.js';
import { ConfigError, ErrorCodes } from '../../errors.js';

export type AuthQueryRunner = (database: string, user: string) => Promise<string | null | undefined>;

export class Credentials {
  private fromFile = new Map<string, UserSecret>();
  private readonly scramCache = new Map<string, { password: string; secret: Promise<ScramSecret> }>();

  constructor(
    private inline: ReadonlyMap<string, string>,
    private authFile: string | null,
    private readonly authQuery: AuthQueryRunner | null,
  ) {
    this.reloadFile();
  }

  /** Replaces the users whose passwords the embedding program knows (a reload of `pgscale up`). */
  setInline(users: ReadonlyMap<string, string>): void {
    this.inline = users;
  }

  /** (Re)reads auth_file; throws a ConfigError naming the file and lines that are wrong. */
  reloadFile(file: string | null = this.authFile): void {
    this.authFile = file;
    if (!file) {
      this.fromFile = new Map();
      return;
    }
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(ErrorCodes.CONFIG_INVALID, `proxy.auth_file ${file}: ${(e as Error).message}`);
    }
    const parsed = parseUserlist(text);
    if (parsed.errors.length > 0) {
      throw new ConfigError(
        ErrorCodes.CONFIG_INVALID,
        `proxy.auth_file ${file}: ${parsed.errors.map((e) => `line ${e.line}: ${e.message}`).join('; ')}`,
      );
    }
    this.fromFile = new Map(parsed.entries.map((e) => [e.user, e.secret]));
  }

  /** The user's secret, or undefined for an unknown user (who then fails like a wrong password). */
  async lookup(user: string, database: string): Promise<UserSecret | undefined> {
    const pw = this.inline.get(user);
    if (pw !== undefined) return { kind: 'plain', password: pw };
    const f = this.fromFile.get(user);
    if (f) return f;
    if (this.authQuery) {
      const s = await this.authQuery(database, user).catch(() => null);
      if (s) return classifySecret(s);
    }
    return undefined;
  }

  /** A SCRAM verifier for a plain password, cached per user while the password stays the same. */
  scramFor(user: string, password: string): Promise<ScramSecret> {
    const c = this.scramCache.get(user);
    if (c && c.password === password) return c.secret;
    const secret = buildScramSecret(password);
    this.scramCache.set(user, { password, secret });
    return secret;
  }

  /** Known user names (for SHOW USERS); never secrets. */
  users(): string[] {
    return [...new Set([...this.inline.keys(), ...this.fromFile.keys()])].sort();
  }
}
