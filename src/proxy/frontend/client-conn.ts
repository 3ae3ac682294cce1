/**
 * One client connection, from the first byte to the end of authentication: encryption
 * negotiation (SSLRequest answered S with TLS configured, N otherwise; GSSENCRequest answered N;
 * each at most once; nothing may follow a request before the handshake), the start-up packet
 * (protocol version, parameters), a CancelRequest, and client authentication (SCRAM-SHA-256,
 * md5 or trust). Unknown users and wrong passwords fail identically (28P01, same message, a mock
 * SCRAM salt). Until authentication succeeds nothing reaches a server; afterwards the connection's
 * messages go to its session (a pooled session or the admin console). A message over 1 MiB is
 * read only once the proxy's message budget has room for it (message-budget.ts), and reading is
 * paused for several independent reasons at once (read-pause.ts).
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { Framer } from '../../protocol/framer.js';
import type { Frame, TypedFrame } from '../../protocol/framer.js';
import { decodeStartupPacket, negotiateProtocol, startupIdentity } from '../../protocol/startup-messages.js';
import type { StartupMessage } from '../../protocol/startup-messages.js';
import {
  encodeAuthentication,
  decodePasswordMessage,
  decodeSASLInitialResponse,
  decodeSASLResponse,
} from '../../protocol/auth-messages.js';
import { encodeBackendMessage } from '../../protocol/backend-messages.js';
import {
  buildErrorResponse,
  decodeErrorResponse,
  errorField,
  fatalFromFailure,
} from '../../protocol/error-response.js';
import { SqlState } from '../../protocol/sqlstate.js';
import { ScramServer } from '../../protocol/scram-server.js';
import { verifyMd5Response, md5Salt } from '../../protocol/md5.js';
import type { UserSecret } from '../../protocol/userlist.js';
import { CANCEL_REQUEST_CODE, PROTOCOL_3_0, PROTOCOL_3_2 } from '../../protocol/limits.js';
import type { ClientId, ServerCredentials } from '../types.js';
import { now, tickReadClock } from '../types.js';
import { cancelKeyFor, processIdFor } from './cancel-key.js';
import type { Credentials } from './credentials.js';
import { startupSettings } from './startup-params.js';
import type { StartupSettings } from './startup-params.js';
import type { LoginBackoff } from './login-backoff.js';
import { LARGE_MESSAGE_BYTES } from './message-budget.js';
import type { BudgetTicket, MessageBudget } from './message-budget.js';
import { ReadPause } from './read-pause.js';

export interface ClientSessionLike {
  onClientFrames(frames: TypedFrame[]): void;
  close(): void;
  /**
   * True when the session calls `inputFlushed` once the messages it was given have left the
   * process; otherwise they are taken to be done with when `onClientFrames` returns.
   */
  readonly reportsInputFlushed?: boolean;
}

export interface LoginRequest {
  user: string;
  database: string;
  settings: StartupSettings;
  serverCreds: ServerCredentials;
  client: ClientConn;
}

/** A failed login, for the log and the metric (never a password or a proof). */
export interface LoginFailure {
  /** authentication: wrong password, unknown user or a bad exchange (counts for the back-off);
   * refused: authenticated but not admitted (database, console); throttled: back-off. */
  kind: 'authentication' | 'refused' | 'throttled';
  user: string;
  database: string;
  /** The client's IP address. */
  address: string;
  reason: string;
}

export type LoginResult =
  { ok: true; session: ClientSessionLike; params: Map<string, string> } | { ok: false; fatal: Buffer };

export interface FrontendHost {
  readonly authType: 'scram-sha-256' | 'md5' | 'trust';
  readonly tlsMode: 'disable' | 'allow' | 'require';
  readonly tlsContext: SecureContext | null;
  readonly credentials: Credentials;
  readonly mockKey: Buffer;
  readonly loginTimeoutMs: number;
  readonly maxPacketSize: number;
  /** Shared by every client of the process: bounds the bytes held for large messages. */
  readonly messageBudget: MessageBudget;
  readonly ignoreStartupParameters: readonly string[];
  /** Failed-login back-off per client address; null: none. */
  readonly loginBackoff: LoginBackoff | null;
  /** Logs and counts a failed login (and feeds the back-off for authentication failures). */
  loginFailed(f: LoginFailure): void;
  login(req: LoginRequest): Promise<LoginResult>;
  cancel(processId: number, key: Buffer): void;
  closed(c: ClientConn): void;
}

type Phase = 'startup' | 'auth' | 'ready' | 'closed';

let nextClientId = 1;

/**
 * Moves past the ids whose process id (cancel-key.ts: their low bits) a connected client still
 * holds; the proxy calls it before each new client (a client that outlived 2^21 later ones).
 */
export function skipTakenClientIds(taken: (processId: number) => boolean): void {
  while (taken(processIdFor(nextClientId))) nextClientId++;
}

export class ClientConn {
  readonly id = nextClientId++ as ClientId;
  readonly connectedAt = now();
  socket: Socket;
  phase: Phase = 'startup';
  user = '';
  database = '';
  applicationName = '';
  tls = false;
  protocol = PROTOCOL_3_0;
  session: ClientSessionLike | null = null;
  private readonly framer = Framer.frontend();
  private sslRequests = 0;
  private gssRequests = 0;
  private authHandler: ((f: TypedFrame) => void) | null = null;
  private loginTimer: NodeJS.Timeout | null;
  /** ReadPause bits in force. */
  private pauses = 0;
  /** Budget reserved for the large message the framer is collecting. */
  private reserved = 0;
  /** Budget of large messages handed to the session that have not left the process yet. */
  private held = 0;
  private ticket: BudgetTicket | null = null;
  // Assigned in the constructor, not as a class field: a class-field arrow function is given its
  // name at run time, which costs each instance a property store (~250 bytes per client).
  private readonly onDataBound: (chunk: Buffer) => void;

  constructor(
    socket: Socket,
    private readonly host: FrontendHost,
    readonly remote: string,
  ) {
    this.socket = socket;
    // Reading remoteAddress made the socket cache its peer's address in an object of its own
    // (~90 bytes per client, kept for the connection's life); `remote` holds what we need of it,
    // and Node reads the address again should anything ask.
    const peer = socket as unknown as { _peername?: unknown };
    if (peer._peername !== undefined) peer._peername = undefined;
    this.onDataBound = (chunk) => this.onData(chunk);
    socket.setNoDelay(true);
    socket.on('data', this.onDataBound);
    socket.on('error', ignoreError);
    socket.on('close', () => this.onClose());
    this.loginTimer = setTimeout(
      () =>
        this.fail(
          buildErrorResponse(
            'FATAL',
            SqlState.CONNECTION_FAILURE,
            'client did not complete authentication in time',
          ),
        ),
      host.loginTimeoutMs,
    );
    this.loginTimer.unref();
  }

  /** The client's IP address (without the port): what the login back-off is kept by. */
  get address(): string {
    const i = this.remote.lastIndexOf(':');
    return i < 0 ? this.remote : this.remote.slice(0, i);
  }

  /** The process id this client is shown (BackendKeyData): it names this process (cancel-key.ts). */
  get processId(): number {
    return processIdFor(this.id);
  }

  /** The key this client must present to cancel its queries (ours, not a server's): 32 bytes. */
  get cancelKey(): Buffer {
    return cancelKeyFor(this.id);
  }

  /** The 4-byte (3.0) or 32-byte (3.2) secret sent in BackendKeyData. */
  get visibleCancelKey(): Buffer {
    const key = this.cancelKey;
    return this.protocol >= PROTOCOL_3_2 ? key : key.subarray(0, 4);
  }

  send(buf: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(buf);
  }

  /** The session's way to end this client (SessionHost). */
  terminate(fatal?: Buffer): void {
    this.fail(fatal);
  }

  /** Stops reading this client for `reason` (SessionHost). */
  pauseReading(reason: ReadPause): void {
    if (this.pauses === 0) this.socket.pause();
    this.pauses |= reason;
  }

  /** Withdraws `reason`; the socket is read again once no reason is left (SessionHost). */
  resumeReading(reason: ReadPause): void {
    if ((this.pauses & reason) === 0) return;
    this.pauses &= ~reason;
    if (this.pauses === 0 && this.phase !== 'closed') this.socket.resume();
  }

  /**
   * The session says every message it was given has left the process (forwarded to a server
   * that took the bytes, or answered): their budget goes back (SessionHost).
   */
  inputFlushed(): void {
    if (this.held === 0) return;
    this.host.messageBudget.release(this.held);
    this.held = 0;
  }

  /** Sends a FATAL error (if given) and closes. */
  fail(fatal?: Buffer): void {
    if (this.phase === 'closed') return;
    if (fatal && !this.socket.destroyed) this.socket.end(fatal);
    else this.socket.end();
    this.phase = 'closed';
    setTimeout(() => this.socket.destroy(), 2000).unref();
    this.finish();
  }

  private finish(): void {
    if (this.loginTimer) clearTimeout(this.loginTimer);
    this.loginTimer = null;
    this.session?.close();
    this.returnBudget();
    this.host.closed(this);
  }

  private onClose(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.finish();
  }

  private onData(chunk: Buffer): void {
    tickReadClock();
    // Pauses go through pauseReading; should anything resume the socket directly, at most this
    // chunk comes in before it is stopped again.
    if (this.pauses !== 0 && !this.socket.isPaused()) this.socket.pause();
    const r = this.framer.push(chunk);
    // The message the reservation was for is the first to complete: the session holds it now.
    if (this.reserved > 0 && r.frames.length > 0) {
      this.held += this.reserved;
      this.reserved = 0;
    }
    this.onFrames(r.frames);
    if (!r.ok && this.phase !== 'closed') this.fail(fatalFromFailure(r));
    this.reserveForPartial();
    // An idle client keeps no list of chunks (its backing store is ~190 bytes).
    this.framer.releaseIfEmpty();
  }

  /**
   * Before more of a large message is read, its whole length is reserved in the budget; without
   * room, this client is not read until the budget grants it (in arrival order). Once reserved,
   * the message is collected into one buffer of its length (no chunks, then a copy of them).
   * Only typed messages after authentication can be this large (the limit before it is 10000).
   */
  private reserveForPartial(): void {
    if (this.phase === 'closed' || this.reserved > 0 || this.ticket) return;
    const n = this.framer.pendingMessageLength;
    if (n <= LARGE_MESSAGE_BYTES) return;
    const budget = this.host.messageBudget;
    if (budget.tryReserve(n)) {
      this.reserved = n;
      this.framer.collectPending();
      return;
    }
    this.pauseReading(ReadPause.budget);
    this.ticket = budget.enqueue(n, () => {
      this.ticket = null;
      this.reserved = n;
      this.framer.collectPending();
      this.resumeReading(ReadPause.budget);
    });
  }

  /** The client is gone: whatever it reserved or waits for goes back to the others. */
  private returnBudget(): void {
    const budget = this.host.messageBudget;
    if (this.ticket) budget.cancel(this.ticket);
    this.ticket = null;
    budget.release(this.reserved + this.held);
    this.reserved = 0;
    this.held = 0;
  }

  private onFrames(frames: Frame[]): void {
    for (const f of frames) {
      if (this.phase === 'closed') return;
      if (f.kind === 'startup') this.onStartupFrame(f.payload);
      else if (this.phase === 'auth') {
        if (f.type !== 'p' || !this.authHandler) {
          return this.fail(
            buildErrorResponse(
              'FATAL',
              SqlState.PROTOCOL_VIOLATION,
              `expected an authentication response, got message type "${f.type}"`,
            ),
          );
        }
        const h = this.authHandler;
        this.authHandler = null;
        h(f);
      } else if (this.phase === 'ready' && this.session) {
        // Hand the typed frames of this chunk over together (the usual case, all of them, is the
        // array itself: a framer past the startup phase returns typed frames only).
        const at = frames.indexOf(f);
        const tail = at === 0 ? frames : frames.slice(at);
        const rest = isTypedAll(tail) ? tail : tail.filter((x): x is TypedFrame => x.kind === 'typed');
        const session = this.session;
        session.onClientFrames(rest);
        if (session.reportsInputFlushed !== true) this.inputFlushed();
        return;
      } else {
        return this.fail(
          buildErrorResponse(
            'FATAL',
            SqlState.PROTOCOL_VIOLATION,
            'unexpected message before authentication',
          ),
        );
      }
    }
  }

  private onStartupFrame(payload: Buffer): void {
    const p = decodeStartupPacket(payload);
    if (!p.ok) {
      // A CancelRequest never gets a reply, not even for a malformed one (PostgreSQL logs it as
      // COMMERROR and closes): an error here would tell a prober what the proxy accepts.
      if (payload.readUInt32BE(0) === CANCEL_REQUEST_CODE) return this.fail();
      return this.fail(fatalFromFailure(p));
    }
    const m = p.value;
    switch (m.name) {
      case 'SSLRequest':
        return this.onSSLRequest();
      case 'GSSENCRequest':
        if (++this.gssRequests > 1 || this.tls) return this.fail();
        this.socket.write('N');
        return this.resume();
      case 'CancelRequest':
        this.host.cancel(m.processId, m.secretKey);
        this.phase = 'closed';
        this.socket.destroy();
        return this.finish();
      case 'StartupMessage':
        return void this.onStartup(m);
    }
  }

  private resume(): void {
    const r = this.framer.resumeStartup();
    this.onFrames(r.frames);
    if (!r.ok && this.phase !== 'closed') this.fail(fatalFromFailure(r));
  }

  private onSSLRequest(): void {
    if (++this.sslRequests > 1 || this.tls) return this.fail();
    // Bytes after the request, before the handshake, would be read as if encrypted (CVE-2021-23214).
    if (this.framer.bufferedBytes > 0) return this.fail();
    const ctx = this.host.tlsContext;
    if (!ctx || this.host.tlsMode === 'disable') {
      this.socket.write('N');
      return this.resume();
    }
    this.socket.write('S');
    const raw = this.socket;
    raw.removeListener('data', this.onDataBound);
    const secure = new TLSSocket(raw, { isServer: true, secureContext: ctx });
    secure.on('error', () => this.fail());
    secure.on('secure', () => {
      this.tls = true;
    });
    secure.on('data', this.onDataBound);
    this.socket = secure;
    this.resume();
  }

  private async onStartup(m: StartupMessage): Promise<void> {
    const neg = negotiateProtocol(m.version, m.params);
    if (!neg.ok) return this.fail(fatalFromFailure(neg));
    this.protocol = neg.value.version;
    const id = startupIdentity(m.params);
    if (!id.ok) return this.fail(fatalFromFailure(id));
    this.user = id.value.user;
    this.database = id.value.database;
    this.applicationName = m.params.get('application_name') ?? '';
    if (this.host.tlsMode === 'require' && !this.tls) {
      return this.fail(
        buildErrorResponse('FATAL', SqlState.INVALID_AUTHORIZATION_SPECIFICATION, 'SSL required'),
      );
    }
    const settings = startupSettings(m.params, this.host.ignoreStartupParameters);
    if (!settings.ok) return this.fail(fatalFromFailure(settings));
    if (neg.value.negotiate) {
      this.send(
        encodeBackendMessage({
          name: 'NegotiateProtocolVersion',
          version: neg.value.version,
          unsupportedOptions: neg.value.unsupportedOptions,
        }),
      );
    }
    const backoff = this.host.authType === 'trust' ? null : this.host.loginBackoff;
    const place = backoff ? backoff.admit(this.address, Date.now()) : 'free';
    if (place === 'refused') {
      this.host.loginFailed(this.failure('throttled', 'too many failed logins from this address'));
      return this.fail(
        buildErrorResponse(
          'FATAL',
          SqlState.TOO_MANY_CONNECTIONS,
          'too many failed login attempts from this address',
          'Try again later.',
        ),
      );
    }
    this.phase = 'auth';
    let creds: ServerCredentials | null;
    try {
      const secret = await this.host.credentials.lookup(this.user, this.database);
      if (this.phase !== 'auth') return;
      creds = await this.authenticate(secret);
    } finally {
      if (place === 'held') backoff?.done(this.address);
    }
    if (creds === null || this.phase !== 'auth') return;
    backoff?.success(this.address);
    this.framer.setMaxMessageLength(this.host.maxPacketSize);
    const result = await this.host.login({
      user: this.user,
      database: this.database,
      settings: settings.value,
      serverCreds: creds,
      client: this,
    });
    if (this.phase !== 'auth') {
      if (result.ok) result.session.close();
      return;
    }
    if (!result.ok) {
      this.host.loginFailed(this.failure('refused', errorMessageOf(result.fatal)));
      return this.fail(result.fatal);
    }
    if (this.loginTimer) clearTimeout(this.loginTimer);
    this.loginTimer = null;
    const parts: Buffer[] = [encodeAuthentication({ name: 'AuthenticationOk' })];
    for (const [k, v] of result.params)
      parts.push(encodeBackendMessage({ name: 'ParameterStatus', parameter: k, value: v }));
    parts.push(
      encodeBackendMessage({
        name: 'BackendKeyData',
        processId: this.processId,
        secretKey: this.visibleCancelKey,
      }),
    );
    parts.push(encodeBackendMessage({ name: 'ReadyForQuery', status: 'I' }));
    this.send(Buffer.concat(parts));
    this.session = result.session;
    this.phase = 'ready';
  }

  /** Runs the configured exchange; returns what the proxy may use to log in to servers, or null. */
  private authenticate(secret: UserSecret | undefined): Promise<ServerCredentials | null> {
    const badPassword = () =>
      buildErrorResponse(
        'FATAL',
        SqlState.INVALID_PASSWORD,
        `password authentication failed for user "${this.user}"`,
      );
    const serverCreds = (s: UserSecret | undefined, clientKey?: Buffer): ServerCredentials => {
      if (!s) return { kind: 'none' };
      if (s.kind === 'plain') return { kind: 'password', password: s.password };
      if (s.kind === 'md5') return { kind: 'md5-hash', hash: s.hash };
      if (clientKey) {
        return {
          kind: 'scram-keys',
          clientKey,
          serverKey: s.secret.serverKey,
          salt: s.secret.salt,
          iterations: s.secret.iterations,
        };
      }
      return { kind: 'none' };
    };
    if (this.host.authType === 'trust') return Promise.resolve(serverCreds(secret));
    if (this.host.authType === 'md5') {
      return (async () => {
        const salt = md5Salt();
        this.send(encodeAuthentication({ name: 'AuthenticationMD5Password', salt }));
        const f = await this.nextAuthMessage();
        if (!f || !(await this.waitTurn())) return null;
        const pm = decodePasswordMessage(f.payload);
        const cred =
          secret?.kind === 'plain'
            ? ({ kind: 'plain', password: secret.password } as const)
            : secret?.kind === 'md5'
              ? ({ kind: 'md5', hash: secret.hash } as const)
              : null;
        if (!pm.ok || !cred || !verifyMd5Response(pm.value.password, cred, this.user, salt)) {
          const reason = !pm.ok
            ? 'malformed password message'
            : !secret
              ? 'unknown user'
              : !cred
                ? 'no md5-usable secret for the user'
                : 'wrong password';
          return this.authFailed(reason, badPassword());
        }
        return serverCreds(secret);
      })();
    }
    // SCRAM-SHA-256. Plain passwords get a (cached) verifier; md5 hashes cannot serve SCRAM.
    return (async () => {
      const scramSecret =
        secret?.kind === 'scram'
          ? secret.secret
          : secret?.kind === 'plain'
            ? await this.host.credentials.scramFor(this.user, secret.password)
            : undefined;
      const scram = new ScramServer({ user: this.user, secret: scramSecret, mockKey: this.host.mockKey });
      this.send(encodeAuthentication({ name: 'AuthenticationSASL', mechanisms: scram.mechanisms() }));
      const first = await this.nextAuthMessage();
      if (!first) return null;
      const init = decodeSASLInitialResponse(first.payload);
      if (!init.ok) return this.authFailed(`bad SASL message: ${init.message}`, fatalFromFailure(init));
      const r1 = scram.handleInitialResponse(init.value.mechanism, init.value.data);
      if (!r1.ok) return this.authFailed(`bad SCRAM message: ${r1.message}`, fatalFromFailure(r1));
      this.send(encodeAuthentication({ name: 'AuthenticationSASLContinue', data: r1.value }));
      const second = await this.nextAuthMessage();
      if (!second || !(await this.waitTurn())) return null;
      const resp = decodeSASLResponse(second.payload);
      if (!resp.ok) return this.authFailed(`bad SASL message: ${resp.message}`, fatalFromFailure(resp));
      const r2 = scram.handleResponse(resp.value.data);
      if (!r2.ok) {
        return r2.sqlstate === SqlState.INVALID_PASSWORD
          ? this.authFailed(
              scramSecret
                ? 'wrong password'
                : secret
                  ? 'no SCRAM-usable secret for the user'
                  : 'unknown user',
              badPassword(),
            )
          : this.authFailed(`bad SCRAM message: ${r2.message}`, fatalFromFailure(r2));
      }
      this.send(encodeAuthentication({ name: 'AuthenticationSASLFinal', data: r2.value }));
      return serverCreds(secret, scram.clientKey);
    })();
  }

  private failure(kind: LoginFailure['kind'], reason: string): LoginFailure {
    return { kind, user: this.user, database: this.database, address: this.address, reason };
  }

  /** An authentication failure: logged and counted (the back-off), then the client is told. */
  private authFailed(reason: string, fatal: Buffer): null {
    if (this.phase === 'auth') this.host.loginFailed(this.failure('authentication', reason));
    this.fail(fatal);
    return null;
  }

  /**
   * Waits for this address's turn to have a password checked (the login back-off): the wait
   * comes before the check, so hanging up early teaches a guesser nothing. False if the client
   * is gone meanwhile.
   */
  private async waitTurn(): Promise<boolean> {
    const ms = this.host.loginBackoff?.turn(this.address, Date.now()) ?? 0;
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    return this.phase === 'auth';
  }

  private nextAuthMessage(): Promise<TypedFrame | null> {
    return new Promise((resolve) => {
      if (this.phase !== 'auth') return resolve(null);
      // The close listener goes when the message comes: left behind, it would keep this promise,
      // and through it the frame, for the whole life of the connection.
      const onClose = () => resolve(null);
      this.authHandler = (f) => {
        this.socket.removeListener('close', onClose);
        resolve(f);
      };
      this.socket.once('close', onClose);
    });
  }
}

/** A socket's errors are followed by 'close', which ends the client: one listener for all (no closure each). */
function ignoreError(): void {}

/** The message of an ErrorResponse we built (for the log line of a refused login). */
function errorMessageOf(fatal: Buffer): string {
  const e = decodeErrorResponse(fatal.subarray(5));
  return (e.ok ? errorField(e.value, 'M') : undefined) ?? 'refused';
}

/** Keeps the array when every frame is typed (no copy); else the typed ones. */
function isTypedAll(frames: Frame[]): frames is TypedFrame[] {
  for (const f of frames) if (f.kind !== 'typed') return false;
  return true;
}
