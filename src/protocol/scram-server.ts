/**
 * The server half of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL runs it
 * (https://www.postgresql.org/docs/current/sasl-authentication.html,
 * https://github.com/postgres/postgres/blob/REL_18_STABLE/src/backend/libpq/auth-scram.c):
 * a small state machine fed the client's SASLInitialResponse and SASLResponse payloads, returning
 * the AuthenticationSASLContinue / SASLFinal payloads or a Failure value.
 *
 * Hardening, each a known failure elsewhere (catalogue/protocol-edges.md, cases 18–26):
 * - every length is capped and every attribute checked before any cryptography;
 * - `m=` (mandatory extensions) and authzid are refused;
 * - channel binding: gs2 flag `y` while we advertise PLUS is a downgrade and fails; `p=` is only
 *   accepted when PLUS is advertised (i.e. `channelBinding` data was supplied by the TLS layer);
 * - the final nonce must equal client nonce + our nonce, and the proof is compared in constant
 *   time; a proof replayed from another session fails because our nonce differs;
 * - an unknown user gets a salt and keys derived by HMAC from a server secret, so the exchange
 *   looks the same as for a real user (same salt for the same name every time) and ends with the
 *   same 28P01 message (CVE-2015-6817 class: user enumeration).
 * Usernames in `n=` are ignored, as in PostgreSQL: the startup packet's user is authoritative.
 */

import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import type { Failure, Result } from './result.js';
import { fail, ok } from './result.js';
import { SqlState } from './sqlstate.js';
import type { ScramSecret } from './scram-secret.js';
import { DEFAULT_SALT_LENGTH, DEFAULT_SCRAM_ITERATIONS } from './scram-secret.js';
import { decodeBase64Strict, hmacSha256, safeEqual, sha256, xor } from './scram-crypto.js';
import type { Attribute } from './scram-attributes.js';
import {
  MAX_NONCE_LENGTH,
  MAX_SCRAM_MESSAGE_LENGTH,
  isPrintable,
  splitAttributes,
  unescapeSaslname,
} from './scram-attributes.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
export const SCRAM_SHA_256_PLUS = 'SCRAM-SHA-256-PLUS';
/** PostgreSQL's SCRAM_RAW_NONCE_LEN: 18 random bytes, base64-encoded to 24 characters. */
const RAW_NONCE_LENGTH = 18;

export interface ChannelBinding {
  /** The only type PostgreSQL implements. */
  readonly type: 'tls-server-end-point';
  /** Hash of our TLS certificate, per RFC 5929 §4.1 (computed by the TLS layer). */
  readonly data: Buffer;
}

export interface ScramServerOptions {
  /** The user from the startup packet (used only in the failure message). */
  readonly user: string;
  /** The user's verifier, or undefined when the user is unknown or has no SCRAM secret. */
  readonly secret: ScramSecret | undefined;
  /** Server-wide random secret from which mock salts for unknown users are derived. */
  readonly mockKey: Buffer;
  /** When set, SCRAM-SHA-256-PLUS is advertised and `p=tls-server-end-point` accepted. */
  readonly channelBinding?: ChannelBinding;
  /** Our nonce part; tests only. Default: 18 random bytes, base64. */
  readonly serverNonce?: string;
  /** Iterations for mock secrets (match the iterations real users have). */
  readonly mockIterations?: number;
}

export type ScramServerState = 'initial' | 'challenged' | 'succeeded' | 'failed';

/** A deterministic, plausible secret for a user that does not exist (or has no SCRAM secret). */
export function mockScramSecret(
  mockKey: Buffer,
  user: string,
  iterations = DEFAULT_SCRAM_ITERATIONS,
): ScramSecret {
  return {
    iterations,
    salt: hmacSha256(mockKey, `pgscale mock salt\0${user}`).subarray(0, DEFAULT_SALT_LENGTH),
    storedKey: hmacSha256(mockKey, `pgscale mock stored key\0${user}`),
    serverKey: hmacSha256(mockKey, `pgscale mock server key\0${user}`),
  };
}

function malformed(detail: string): Failure {
  return fail(SqlState.PROTOCOL_VIOLATION, 'malformed SCRAM message', detail);
}

export class ScramServer {
  private phase: ScramServerState = 'initial';
  private readonly secret: ScramSecret;
  private readonly doomed: boolean;
  private gs2Header = '';
  private cbindFlag = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';
  private recovered: Buffer | undefined;

  constructor(private readonly options: ScramServerOptions) {
    this.doomed = options.secret === undefined;
    this.secret = options.secret ?? mockScramSecret(options.mockKey, options.user, options.mockIterations);
  }

  get state(): ScramServerState {
    return this.phase;
  }

  /** Mechanisms for AuthenticationSASL, PLUS first as PostgreSQL lists them. */
  mechanisms(): string[] {
    return this.options.channelBinding ? [SCRAM_SHA_256_PLUS, SCRAM_SHA_256] : [SCRAM_SHA_256];
  }

  /**
   * After success: the client's ClientKey, recovered from its proof. Password-equivalent for SCRAM
   * logins with this salt and iteration count; lets the proxy log in to a server holding the same
   * secret without knowing the password (PgBouncer does the same). Keep it in memory only.
   */
  get clientKey(): Buffer | undefined {
    return this.recovered;
  }

  private authFailed(): Failure {
    return fail(SqlState.INVALID_PASSWORD, `password authentication failed for user "${this.options.user}"`);
  }

  private text(data: Buffer | null): string | Failure {
    if (data === null || data.length === 0) return malformed('The message is empty.');
    if (data.length > MAX_SCRAM_MESSAGE_LENGTH) return malformed('The message is too long.');
    if (!isUtf8(data)) return malformed('The message is not valid UTF-8.');
    return data.toString('utf8');
  }

  /** SASLInitialResponse → server-first-message (payload of AuthenticationSASLContinue). */
  handleInitialResponse(mechanism: string, data: Buffer | null): Result<Buffer> {
    if (this.phase !== 'initial') return fail(SqlState.PROTOCOL_VIOLATION, 'unexpected SASLInitialResponse');
    this.phase = 'failed'; // until proven otherwise
    if (!this.mechanisms().includes(mechanism)) {
      return fail(SqlState.PROTOCOL_VIOLATION, 'client selected an invalid SASL authentication mechanism');
    }
    const text = this.text(data);
    if (typeof text !== 'string') return text;
    const header = this.readGs2Header(text, mechanism === SCRAM_SHA_256_PLUS);
    if (typeof header !== 'number') return header;
    this.gs2Header = text.slice(0, header);
    this.clientFirstBare = text.slice(header);
    const attrs = splitAttributes(this.clientFirstBare);
    if (attrs === undefined) return malformed('Attributes must be letter=value pairs.');
    if (attrs[0]?.name === 'm') {
      return fail(SqlState.FEATURE_NOT_SUPPORTED, 'client requires an unsupported SCRAM extension');
    }
    if (attrs[0]?.name !== 'n' || unescapeSaslname(attrs[0].value) === undefined) {
      return malformed('Expected a valid "n" attribute.');
    }
    const clientNonce = attrs[1]?.name === 'r' ? attrs[1].value : '';
    if (!isPrintable(clientNonce) || clientNonce.length > MAX_NONCE_LENGTH / 2) {
      return malformed('Expected a printable "r" attribute.');
    }
    // Later attributes are optional extensions, which RFC 5802 §5.1 says to ignore.
    const serverNonce = this.options.serverNonce ?? randomBytes(RAW_NONCE_LENGTH).toString('base64');
    this.nonce = clientNonce + serverNonce;
    this.serverFirst = `r=${this.nonce},s=${this.secret.salt.toString('base64')},i=${this.secret.iterations}`;
    this.phase = 'challenged';
    return ok(Buffer.from(this.serverFirst, 'utf8'));
  }

  /** Returns the gs2 header's length, or a Failure. */
  private readGs2Header(text: string, plusSelected: boolean): number | Failure {
    let pos: number;
    if (text.startsWith('n,') || text.startsWith('y,')) {
      this.cbindFlag = text[0] ?? '';
      if (plusSelected)
        return malformed('The client selected SCRAM-SHA-256-PLUS, but sent no channel binding data.');
      if (this.cbindFlag === 'y' && this.options.channelBinding) {
        // The client supports channel binding but believes we do not: someone stripped PLUS.
        return fail(
          SqlState.PROTOCOL_VIOLATION,
          'SCRAM channel binding negotiation error',
          'The client supports SCRAM channel binding but thinks the server does not. However, this server does support channel binding.',
        );
      }
      pos = 2;
    } else if (text.startsWith('p=')) {
      const comma = text.indexOf(',');
      const name = comma < 0 ? '' : text.slice(2, comma);
      if (!plusSelected || !this.options.channelBinding) {
        return malformed(
          'The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.',
        );
      }
      if (name !== this.options.channelBinding.type)
        return malformed('Unsupported SCRAM channel-binding type.');
      this.cbindFlag = 'p';
      pos = comma + 1;
    } else {
      return malformed('Unexpected channel-binding flag.');
    }
    if (text[pos] === 'a') {
      return fail(
        SqlState.FEATURE_NOT_SUPPORTED,
        'client uses authorization identity, but it is not supported',
      );
    }
    if (text[pos] !== ',') return malformed('Unexpected attribute in gs2 header.');
    return pos + 1;
  }

  /** SASLResponse (client-final-message) → server-final-message (payload of SASLFinal). */
  handleResponse(data: Buffer): Result<Buffer> {
    if (this.phase !== 'challenged') return fail(SqlState.PROTOCOL_VIOLATION, 'unexpected SASLResponse');
    this.phase = 'failed';
    const text = this.text(data);
    if (typeof text !== 'string') return text;
    const attrs = splitAttributes(text);
    if (attrs === undefined || attrs.length < 3) return malformed('Attributes must be letter=value pairs.');
    const [c, r] = attrs as [Attribute, Attribute];
    const proofAttr = attrs[attrs.length - 1] as Attribute;
    if (c.name !== 'c' || r.name !== 'r' || proofAttr.name !== 'p') {
      return malformed('Expected attributes c, r, …, p.');
    }
    const cbind = decodeBase64Strict(c.value);
    const expected = Buffer.concat([
      Buffer.from(this.gs2Header, 'utf8'),
      this.cbindFlag === 'p' && this.options.channelBinding
        ? this.options.channelBinding.data
        : Buffer.alloc(0),
    ]);
    if (cbind === undefined || !cbind.equals(expected)) {
      return malformed('SCRAM channel binding check failed.');
    }
    const proof = decodeBase64Strict(proofAttr.value);
    if (proof?.length !== 32) return malformed('Malformed proof in client-final-message.');
    const nonceOk = r.value === this.nonce;
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${text.slice(0, proofAttr.offset - 1)}`;
    const clientKey = xor(proof, hmacSha256(this.secret.storedKey, authMessage));
    const proofOk = safeEqual(sha256(clientKey), this.secret.storedKey);
    if (!nonceOk || !proofOk || this.doomed) return this.authFailed();
    this.recovered = clientKey;
    this.phase = 'succeeded';
    return ok(Buffer.from(`v=${hmacSha256(this.secret.serverKey, authMessage).toString('base64')}`, 'utf8'));
  }
}
