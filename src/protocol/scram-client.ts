/**
 * The client half of SCRAM-SHA-256, used by the proxy to log in to PostgreSQL servers. It speaks
 * exactly what libpq sends (https://github.com/postgres/postgres/blob/REL_18_STABLE/src/interfaces/libpq/fe-auth-scram.c):
 * client-first `n,,n=,r=<nonce>` (empty user name — the server takes the startup user; gs2 `n`
 * because we do not do channel binding), so the payloads of a real server's
 * AuthenticationSASLContinue / SASLFinal messages can be passed straight in.
 *
 * Credentials: a password, or a ClientKey + ServerKey pair recovered from a client's successful
 * SCRAM exchange with us (ScramServer.clientKey) together with that secret's salt and iterations.
 * A stored secret alone cannot log in: it holds StoredKey = H(ClientKey), and the proof needs
 * ClientKey itself — that one-wayness is the point of SCRAM. Keys only work if the server's salt
 * and iteration count equal the secret's, which is checked.
 *
 * A server is not trusted either (case 41): the server-first message is length-capped, its nonce
 * must extend ours, the salt must be canonical base64 and the iteration count is bounded (a huge
 * count would pin a thread-pool thread), and the server signature is compared in constant time.
 */

import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import type { Failure, Result } from './result.js';
import { fail, ok } from './result.js';
import { SqlState } from './sqlstate.js';
import {
  decodeBase64Strict,
  deriveKeys,
  hmacSha256,
  safeEqual,
  saltedPassword,
  sha256,
  xor,
} from './scram-crypto.js';
import {
  MAX_NONCE_LENGTH,
  MAX_SCRAM_MESSAGE_LENGTH,
  escapeSaslname,
  isPrintable,
  splitAttributes,
} from './scram-attributes.js';
import { saslprep } from './saslprep.js';

export type ScramClientCredentials =
  | { readonly password: string }
  | {
      readonly clientKey: Buffer;
      readonly serverKey: Buffer;
      readonly salt: Buffer;
      readonly iterations: number;
    };

export interface ScramClientOptions {
  /** Sent in `n=`; PostgreSQL ignores it and libpq sends ''. */
  readonly username?: string;
  /** Our nonce; tests only. Default: 18 random bytes, base64 (as libpq). */
  readonly clientNonce?: string;
  /** Refuse servers asking for more PBKDF2 rounds than this (default 1,000,000). */
  readonly maxIterations?: number;
}

export type ScramClientState = 'initial' | 'first-sent' | 'final-sent' | 'succeeded' | 'failed';

const DEFAULT_MAX_ITERATIONS = 1_000_000;

function malformed(detail: string): Failure {
  return fail(SqlState.PROTOCOL_VIOLATION, 'malformed SCRAM message from server', detail);
}

export class ScramClient {
  private phase: ScramClientState = 'initial';
  private readonly clientNonce: string;
  private clientFirstBare = '';
  private expectedServerSignature: Buffer | undefined;

  constructor(
    private readonly credentials: ScramClientCredentials,
    private readonly options: ScramClientOptions = {},
  ) {
    this.clientNonce = options.clientNonce ?? randomBytes(18).toString('base64');
  }

  get state(): ScramClientState {
    return this.phase;
  }

  /** The mechanism to name in SASLInitialResponse. */
  get mechanism(): string {
    return 'SCRAM-SHA-256';
  }

  /** client-first-message: the data of SASLInitialResponse. */
  clientFirst(): Buffer {
    this.clientFirstBare = `n=${escapeSaslname(this.options.username ?? '')},r=${this.clientNonce}`;
    this.phase = 'first-sent';
    return Buffer.from(`n,,${this.clientFirstBare}`, 'utf8');
  }

  /** server-first-message (AuthenticationSASLContinue data) → client-final-message (SASLResponse data). */
  async handleServerFirst(data: Buffer): Promise<Result<Buffer>> {
    if (this.phase !== 'first-sent')
      return fail(SqlState.PROTOCOL_VIOLATION, 'unexpected SCRAM server-first-message');
    this.phase = 'failed';
    if (data.length > MAX_SCRAM_MESSAGE_LENGTH || !isUtf8(data))
      return malformed('server-first-message too long or not UTF-8');
    const text = data.toString('utf8');
    const attrs = splitAttributes(text);
    if (attrs?.[0]?.name === 'm') return malformed('server requires an unsupported SCRAM extension');
    if (attrs?.length !== 3 || attrs[0]?.name !== 'r' || attrs[1]?.name !== 's' || attrs[2]?.name !== 'i') {
      return malformed('expected exactly r=, s=, i=');
    }
    const nonce = attrs[0].value;
    if (
      nonce.length <= this.clientNonce.length ||
      nonce.length > MAX_NONCE_LENGTH ||
      !nonce.startsWith(this.clientNonce) ||
      !isPrintable(nonce)
    ) {
      return malformed('server nonce does not extend the client nonce');
    }
    const salt = decodeBase64Strict(attrs[1].value);
    if (salt === undefined || salt.length === 0) return malformed('invalid salt');
    const maxIterations = this.options.maxIterations ?? DEFAULT_MAX_ITERATIONS;
    if (!/^[1-9][0-9]{0,9}$/.test(attrs[2].value) || Number(attrs[2].value) > maxIterations) {
      return malformed(`iteration count must be 1..${maxIterations}`);
    }
    const iterations = Number(attrs[2].value);

    let clientKey: Buffer;
    let serverKey: Buffer;
    if ('password' in this.credentials) {
      const keys = deriveKeys(await saltedPassword(saslprep(this.credentials.password), salt, iterations));
      clientKey = keys.clientKey;
      serverKey = keys.serverKey;
    } else {
      if (!salt.equals(this.credentials.salt) || iterations !== this.credentials.iterations) {
        return fail(
          SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
          'stored SCRAM keys do not match the server',
          "The server's salt or iteration count differs from the secret the keys came from; a password is needed.",
        );
      }
      clientKey = this.credentials.clientKey;
      serverKey = this.credentials.serverKey;
    }
    const withoutProof = `c=biws,r=${nonce}`; // biws = base64("n,,")
    const authMessage = `${this.clientFirstBare},${text},${withoutProof}`;
    const storedKey = sha256(clientKey);
    const proof = xor(clientKey, hmacSha256(storedKey, authMessage));
    this.expectedServerSignature = hmacSha256(serverKey, authMessage);
    this.phase = 'final-sent';
    return ok(Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8'));
  }

  /** server-final-message (AuthenticationSASLFinal data): verifies the server knew our secret. */
  handleServerFinal(data: Buffer): Result<void> {
    if (this.phase !== 'final-sent' || this.expectedServerSignature === undefined) {
      return fail(SqlState.PROTOCOL_VIOLATION, 'unexpected SCRAM server-final-message');
    }
    this.phase = 'failed';
    if (data.length > MAX_SCRAM_MESSAGE_LENGTH || !isUtf8(data))
      return malformed('server-final-message too long');
    const text = data.toString('utf8');
    if (text.startsWith('e=')) {
      return fail(
        SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
        'SCRAM authentication failed on the server',
        text.slice(2, 100),
      );
    }
    const attrs = splitAttributes(text);
    if (attrs?.length !== 1 || attrs[0]?.name !== 'v') return malformed('expected v=');
    const signature = decodeBase64Strict(attrs[0].value);
    if (signature === undefined || !safeEqual(signature, this.expectedServerSignature)) {
      return fail(SqlState.INVALID_AUTHORIZATION_SPECIFICATION, 'invalid SCRAM server signature');
    }
    this.phase = 'succeeded';
    return ok(undefined);
  }
}
