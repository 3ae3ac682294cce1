/**
 * One connection from the proxy to a PostgreSQL server: TCP (optionally TLS), the start-up and
 * authentication as a client (SCRAM-SHA-256, md5 or cleartext, whichever the server asks for),
 * then a framed message stream handed to whoever owns the connection at the moment: the pool
 * while it is idle, a client session while it is attached. Besides the stream, it remembers what
 * the proxy must know to reuse it safely: its transaction status, the prepared statements it
 * holds, the session settings applied to it and whether it must be reset.
 */
import { connect as netConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { Framer } from '../../protocol/framer.js';
import type { TypedFrame } from '../../protocol/framer.js';
import { decodeAuthentication, encodeAuthResponse } from '../../protocol/auth-messages.js';
import {
  decodeBackendKeyData,
  decodeParameterStatus,
  readyForQueryStatus,
} from '../../protocol/backend-messages.js';
import type { TransactionStatus } from '../../protocol/backend-messages.js';
import { encodeSSLRequest, encodeStartupMessage } from '../../protocol/startup-messages.js';
import { PROTOCOL_3_0 } from '../../protocol/limits.js';
import { ScramClient } from '../../protocol/scram-client.js';
import { md5PasswordResponse, md5ResponseFromHash } from '../../protocol/md5.js';
import { decodeErrorResponse, summarizeError, buildErrorResponse } from '../../protocol/error-response.js';
import type { ErrorResponse } from '../../protocol/error-response.js';
import { encodeFrontendMessage } from '../../protocol/frontend-messages.js';
import { SqlState } from '../../protocol/sqlstate.js';
import type { BackendPid, ServerCredentials, ServerId, ServerTarget, ServerTlsMode } from '../types.js';
import { now, tickReadClock } from '../types.js';

let nextServerId = 1;

/** A login failure; `error` is the server's ErrorResponse when it sent one (forwarded to clients). */
export class ServerLoginError extends Error {
  constructor(
    message: string,
    readonly sqlstate: string,
    readonly errorResponse: Buffer,
  ) {
    super(message);
  }
}

export interface ServerConnOptions {
  connectTimeoutMs: number;
  tls: { mode: ServerTlsMode; caFile: string | null };
  /** Extra startup parameters (application_name…); never client-controlled GUCs. */
  startupParams?: Record<string, string>;
}

export type FrameHandler = (frames: TypedFrame[], chunkEnd: boolean) => void;

export class ServerConn {
  readonly id = nextServerId++ as ServerId;
  readonly createdAt = now();
  lastUsedAt = now();
  /**
   * Whether the connection is gone (closed, destroyed, or closed by the server). Whether it is
   * idle, lent or being checked is not its own field: it is which list of its pool it is in.
   */
  private isClosed = false;
  txStatus: TransactionStatus = 'I';
  readonly params = new Map<string, string>();
  backendPid = 0 as BackendPid;
  backendKey: Buffer = Buffer.alloc(0);
  /** Server-side prepared statement names it holds, oldest first (LRU). */
  readonly prepared = new Map<string, true>();
  /**
   * Session settings applied to it (lowercase name → SQL value), beyond the server defaults: the
   * map of the client record it last served, shared (such maps are replaced, never changed).
   */
  settings: ReadonlyMap<string, string> = new Map<string, string>();
  /** Holds state we cannot restore (SET ROLE, temp tables…): reset before anyone else uses it. */
  needsReset = false;
  /** Holds a departed client's sequence state (currval): DISCARD SEQUENCES before reuse. */
  needsSequenceReset = false;
  /** Cancels in flight against it: it is not handed to another client until they are done. */
  cancelsInFlight = 0;
  /**
   * The pool's generation (its target) when it opened this connection: an older one is not
   * reused. -1 until a pool sets it: a connection no pool opened never goes back to one.
   */
  poolGeneration = -1;
  /** Who reads its messages now. */
  private handler: FrameHandler | null = null;
  private closeHandlers: ((err?: Error) => void)[] = [];
  private lostHandler: ((conn: ServerConn) => void) | null = null;
  // DataRow and CopyData are only forwarded: a long one is passed on a chunk at a time, never
  // held whole (a 100 MB value for each of 100 slow clients would otherwise be 10 GB here).
  private readonly framer = Framer.backend({ streamAbove: STREAM_ABOVE, streamTypes: 'Dd' });

  private constructor(
    readonly socket: Socket,
    readonly target: ServerTarget,
  ) {}

  static async connect(
    target: ServerTarget,
    creds: ServerCredentials,
    opts: ServerConnOptions,
  ): Promise<ServerConn> {
    const raw = await openSocket(target, opts);
    const conn = new ServerConn(raw, target);
    try {
      await conn.login(creds, opts);
    } catch (e) {
      raw.destroy();
      throw e;
    }
    conn.socket.on('data', (chunk: Buffer) => conn.onData(chunk));
    conn.socket.on('error', () => undefined);
    conn.socket.on('close', () => conn.onClosed());
    conn.socket.setNoDelay(true);
    conn.socket.setKeepAlive(true, 30_000);
    return conn;
  }

  setHandler(h: FrameHandler | null): void {
    this.handler = h;
  }

  onClose(fn: (err?: Error) => void): void {
    this.closeHandlers.push(fn);
  }

  /** The current owner's reaction to the connection dying (replaced at each attachment, not accumulated). */
  /** Who hears that the connection died while lent (given the connection: one handler per owner, not per loan). */
  setLostHandler(fn: ((conn: ServerConn) => void) | null): void {
    this.lostHandler = fn;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  write(buf: Buffer): boolean {
    if (this.isClosed) return false;
    return this.socket.write(buf);
  }

  /** Sends Terminate and closes; idempotent. */
  close(): void {
    if (this.isClosed) return;
    if (!this.socket.destroyed && this.socket.writable)
      this.socket.end(encodeFrontendMessage({ name: 'Terminate' }));
    this.isClosed = true;
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  destroy(): void {
    this.isClosed = true;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    tickReadClock();
    const r = this.framer.push(chunk);
    const frames = r.frames as TypedFrame[];
    for (const f of frames) {
      if (f.type === 'Z') {
        const status = readyForQueryStatus(f.bytes);
        if (status !== null) this.txStatus = status;
      } else if (f.type === 'S') {
        const p = decodeParameterStatus(f.payload);
        if (p.ok) this.params.set(p.value.parameter, p.value.value);
      }
    }
    if (frames.length > 0) {
      if (this.handler) this.handler(frames, true);
      else this.unexpected(frames);
    }
    if (!r.ok) this.destroy();
  }

  /** Messages while nobody owns the connection: notices are fine, anything else retires it. */
  private unexpected(frames: TypedFrame[]): void {
    for (const f of frames) {
      if (f.type === 'N' || f.type === 'S' || f.type === 'A') continue;
      this.destroy();
      return;
    }
  }

  private onClosed(): void {
    this.isClosed = true;
    const lost = this.lostHandler;
    this.lostHandler = null;
    lost?.(this);
    const hs = this.closeHandlers;
    this.closeHandlers = [];
    for (const h of hs) h();
  }

  /**
   * Runs a simple query on a connection nobody else owns and returns its rows as text (or the
   * error). For the proxy's own needs: resets, checks, auth_query.
   */
  query(
    sql: string,
    timeoutMs = 10_000,
  ): Promise<{ rows: (string | null)[][]; error: ErrorResponse | null }> {
    return new Promise((resolve, reject) => {
      const rows: (string | null)[][] = [];
      let error: ErrorResponse | null = null;
      const timer = setTimeout(() => {
        this.destroy();
        reject(new Error(`server did not answer "${sql.slice(0, 40)}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const prev = this.handler;
      const onClose = () => {
        clearTimeout(timer);
        reject(new Error('server connection closed during an internal query'));
      };
      this.closeHandlers.push(onClose);
      this.handler = (frames) => {
        for (const f of frames) {
          // A row streamed in pieces is far larger than anything the proxy asks for itself.
          if (f.partial) error ??= { name: 'ErrorResponse', fields: [] };
          else if (f.type === 'D') rows.push(decodeTextRow(f.payload));
          else if (f.type === 'E') {
            const e = decodeErrorResponse(f.payload);
            error = e.ok ? e.value : { name: 'ErrorResponse', fields: [] };
          } else if (f.type === 'Z') {
            clearTimeout(timer);
            this.handler = prev;
            this.closeHandlers = this.closeHandlers.filter((h) => h !== onClose);
            resolve({ rows, error });
            return;
          }
        }
      };
      this.write(encodeFrontendMessage({ name: 'Query', query: sql }));
    });
  }

  // ------------------------------------------------------------------ login

  private login(creds: ServerCredentials, opts: ServerConnOptions): Promise<void> {
    const params = new Map<string, string>([
      ['user', this.target.user],
      ['database', this.target.database],
      ...Object.entries(opts.startupParams ?? {}),
    ]);
    return new Promise((resolve, reject) => {
      // Everything a server sends before ReadyForQuery is short: a bound that low keeps a hostile
      // or broken server from making the proxy buffer a huge message before it is logged in.
      const framer = Framer.backend({ maxMessageLength: LOGIN_MESSAGE_LIMIT });
      let scram: ScramClient | null = null;
      let done = false;
      const timer = setTimeout(
        () => finish(loginError(SqlState.CONNECTION_FAILURE, `server login timed out`)),
        opts.connectTimeoutMs,
      );
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.socket.removeListener('data', onData);
        this.socket.removeListener('close', onClose);
        this.socket.removeListener('error', onError);
        if (err) reject(err);
        else resolve();
      };
      const onError = (e: Error) =>
        finish(loginError(SqlState.CONNECTION_FAILURE, `server connection failed: ${e.message}`));
      const onClose = () =>
        finish(loginError(SqlState.CONNECTION_FAILURE, 'server closed the connection during login'));
      const onData = (chunk: Buffer) => {
        const r = framer.push(chunk);
        for (const f of r.frames as TypedFrame[]) {
          if (done) return;
          const step = this.loginFrame(
            f,
            creds,
            () => scram,
            (s) => (scram = s),
          );
          if (step === 'ready') return finish();
          if (step instanceof Error) return finish(step);
          if (step instanceof Promise) {
            this.socket.pause();
            step.then(
              () => this.socket.resume(),
              (e: Error) => finish(e),
            );
          }
        }
        if (!r.ok)
          finish(loginError(SqlState.PROTOCOL_VIOLATION, `invalid message from server: ${r.message}`));
      };
      this.socket.on('data', onData);
      this.socket.on('close', onClose);
      this.socket.on('error', onError);
      this.socket.write(encodeStartupMessage({ version: PROTOCOL_3_0, params }));
    });
  }

  private loginFrame(
    f: TypedFrame,
    creds: ServerCredentials,
    getScram: () => ScramClient | null,
    setScram: (s: ScramClient) => void,
  ): 'ready' | 'continue' | Error | Promise<void> {
    switch (f.type) {
      case 'R': {
        // libpq's own bound: an authentication request longer than this is not one.
        if (f.payload.length > AUTH_REQUEST_LIMIT)
          return loginError(
            SqlState.PROTOCOL_VIOLATION,
            `invalid authentication request from server (${f.payload.length} bytes)`,
          );
        const a = decodeAuthentication(f.payload);
        if (!a.ok) return loginError(SqlState.PROTOCOL_VIOLATION, a.message);
        const m = a.value;
        switch (m.name) {
          case 'AuthenticationOk':
            return 'continue';
          case 'AuthenticationCleartextPassword':
            if (creds.kind !== 'password') return noCreds(this.target.user, 'a password');
            this.socket.write(encodeAuthResponse({ name: 'PasswordMessage', password: creds.password }));
            return 'continue';
          case 'AuthenticationMD5Password': {
            let response: string;
            if (creds.kind === 'password')
              response = md5PasswordResponse(this.target.user, creds.password, m.salt);
            else if (creds.kind === 'md5-hash') response = md5ResponseFromHash(creds.hash, m.salt);
            else return noCreds(this.target.user, 'an md5 hash or password');
            this.socket.write(encodeAuthResponse({ name: 'PasswordMessage', password: response }));
            return 'continue';
          }
          case 'AuthenticationSASL': {
            if (!m.mechanisms.includes('SCRAM-SHA-256')) {
              return loginError(
                SqlState.FEATURE_NOT_SUPPORTED,
                `server offers no supported SASL mechanism (${m.mechanisms.join(', ')})`,
              );
            }
            let s: ScramClient;
            if (creds.kind === 'password') s = new ScramClient({ password: creds.password });
            else if (creds.kind === 'scram-keys') s = new ScramClient(creds);
            else return noCreds(this.target.user, 'a password or SCRAM keys');
            setScram(s);
            this.socket.write(
              encodeAuthResponse({
                name: 'SASLInitialResponse',
                mechanism: s.mechanism,
                data: s.clientFirst(),
              }),
            );
            return 'continue';
          }
          case 'AuthenticationSASLContinue': {
            const s = getScram();
            if (!s) return loginError(SqlState.PROTOCOL_VIOLATION, 'unexpected SASLContinue');
            return s.handleServerFirst(m.data).then((r) => {
              if (!r.ok) throw loginError(r.sqlstate, `SCRAM with server failed: ${r.message}`);
              this.socket.write(encodeAuthResponse({ name: 'SASLResponse', data: r.value }));
            });
          }
          case 'AuthenticationSASLFinal': {
            const s = getScram();
            const r = s?.handleServerFinal(m.data);
            if (!r?.ok) return loginError(SqlState.INVALID_PASSWORD, 'server signature did not verify');
            return 'continue';
          }
        }
        return 'continue';
      }
      case 'S': {
        const p = decodeParameterStatus(f.payload);
        if (p.ok) this.params.set(p.value.parameter, p.value.value);
        return 'continue';
      }
      case 'K': {
        const k = decodeBackendKeyData(f.payload, PROTOCOL_3_0);
        if (k.ok) {
          this.backendPid = k.value.processId as BackendPid;
          this.backendKey = Buffer.from(k.value.secretKey);
        }
        return 'continue';
      }
      case 'Z':
        return 'ready';
      case 'E': {
        const e = decodeErrorResponse(f.payload);
        const s = e.ok ? summarizeError(e.value) : null;
        // Passed on to the client as it is only when it is a well-formed error; a server that
        // leaves out the severity, the code or the message gets its error replaced by ours.
        if (!s || !s.sqlstate || !/^[0-9A-Z]{5}$/.test(s.sqlstate) || s.message === undefined || !s.severity)
          return loginError(
            SqlState.PROTOCOL_VIOLATION,
            'server refused the login with a malformed ErrorResponse',
          );
        return new ServerLoginError(s.message, s.sqlstate, Buffer.from(f.bytes));
      }
      case 'N':
        return 'continue';
      case 'v':
        // The proxy asks for protocol 3.0 with no options: there is nothing to negotiate, and a
        // server that says otherwise is not speaking PostgreSQL's protocol.
        return loginError(
          SqlState.PROTOCOL_VIOLATION,
          'server sent NegotiateProtocolVersion although the proxy asked for 3.0 without options',
        );
      default:
        return loginError(
          SqlState.PROTOCOL_VIOLATION,
          `unexpected message "${f.type}" from server during login`,
        );
    }
  }
}

/** DataRow/CopyData messages longer than this are forwarded in pieces as they arrive. */
const STREAM_ABOVE = 64 * 1024;
/** Bytes of one message from a server before it is logged in (libpq bounds short messages alike). */
const LOGIN_MESSAGE_LIMIT = 30_000;
/** Bytes of an authentication request's payload (libpq's bound). */
const AUTH_REQUEST_LIMIT = 2000;

function loginError(sqlstate: string, message: string): ServerLoginError {
  return new ServerLoginError(message, sqlstate, buildErrorResponse('FATAL', sqlstate, message));
}

function noCreds(user: string, what: string): ServerLoginError {
  return loginError(
    SqlState.INVALID_PASSWORD,
    `the proxy has no credentials to log in to the server as "${user}" (the server asks for ${what})`,
  );
}

export function decodeTextRow(payload: Buffer): (string | null)[] {
  const n = payload.readUInt16BE(0);
  const out: (string | null)[] = [];
  let off = 2;
  for (let i = 0; i < n; i++) {
    const len = payload.readInt32BE(off);
    off += 4;
    if (len < 0) out.push(null);
    else {
      out.push(payload.toString('utf8', off, off + len));
      off += len;
    }
  }
  return out;
}

function openSocket(target: ServerTarget, opts: ServerConnOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: target.host, port: target.port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(
        loginError(
          SqlState.CONNECTION_FAILURE,
          `could not connect to server ${target.host}:${target.port}: timeout`,
        ),
      );
    }, opts.connectTimeoutMs);
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(
        loginError(
          SqlState.CONNECTION_FAILURE,
          `could not connect to server ${target.host}:${target.port}: ${e.message}`,
        ),
      );
    });
    sock.once('connect', () => {
      if (opts.tls.mode === 'disable') {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(sock);
        return;
      }
      sock.write(encodeSSLRequest());
      sock.once('data', (d: Buffer) => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        if (d.length !== 1 || (d[0] !== 0x53 && d[0] !== 0x4e)) {
          sock.destroy();
          reject(loginError(SqlState.PROTOCOL_VIOLATION, 'invalid answer to SSLRequest from server'));
          return;
        }
        if (d[0] === 0x4e) {
          if (opts.tls.mode === 'prefer') resolve(sock);
          else {
            sock.destroy();
            reject(
              loginError(
                SqlState.CONNECTION_FAILURE,
                'server does not support TLS but server_tls requires it',
              ),
            );
          }
          return;
        }
        const verify = opts.tls.mode === 'verify-ca' || opts.tls.mode === 'verify-full';
        const full = opts.tls.mode === 'verify-full';
        const t = tlsConnect({
          socket: sock,
          rejectUnauthorized: verify,
          ca: opts.tls.caFile ? readFileSync(opts.tls.caFile) : undefined,
          // SNI takes names only (RFC 6066); an IP address is checked as the socket's host.
          servername: full && isIP(target.host) === 0 ? target.host : undefined,
          // Left out for verify-full: an explicit undefined would replace Node's default check
          // (and trip an assertion inside node:tls).
          ...(full ? {} : { checkServerIdentity: () => undefined }),
        });
        t.once('secureConnect', () => resolve(t));
        t.once('error', (e: Error) =>
          reject(loginError(SqlState.CONNECTION_FAILURE, `TLS to server failed: ${e.message}`)),
        );
      });
    });
  });
}
