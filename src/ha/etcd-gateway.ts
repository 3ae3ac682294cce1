/**
 * HTTP calls to etcd v3's JSON gateway (grpc-gateway: POST /v3/<service>/<method>, JSON bodies,
 * int64 fields as strings, bytes as base64), with Node's global fetch, so no gRPC dependency.
 * See https://etcd.io/docs/v3.4/dev-guide/api_grpc_gateway/. Several endpoints: an operation
 * starts at the one that answered last (or the one after the last that failed) and moves on when
 * one fails, all within one deadline
 * (AbortSignal.timeout), so an operation never takes longer than the timeout, however many
 * members are down. A compare-and-set is retried on another endpoint only when the first could
 * not even be connected to: after a timeout it may have been applied, and applying it twice
 * would report a failed comparison for our own write. Optional authentication: a token from
 * /v3/auth/authenticate per endpoint (etcd's simple tokens are only valid on the member that
 * issued them), fetched again once when a member says it is no longer valid. No error message
 * carries the password or a token.
 */
import { ErrorCodes, errorMessage } from '../errors.js';
import { StoreError } from './store.js';

export interface EtcdAuth {
  readonly username: string;
  readonly password: string;
}

/** gRPC status codes the gateway reports (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
const GRPC_NOT_FOUND = 5;
const GRPC_UNAUTHENTICATED = 16;

/** An answer from etcd itself (not a transport failure): retrying elsewhere would not help. */
export class EtcdReplyError extends Error {
  constructor(
    readonly grpcCode: number,
    message: string,
  ) {
    super(message);
  }

  get leaseNotFound(): boolean {
    return this.grpcCode === GRPC_NOT_FOUND && this.message.includes('lease not found');
  }
}

/** Connection errors that prove the request never reached the server. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

const AUTH_TIMEOUT_MS = 10_000;

export interface CallOptions {
  /** May the request be sent again to another endpoint after an ambiguous failure? */
  readonly retryable: boolean;
}

export class EtcdGateway {
  private preferred = 0;
  private readonly tokens = new Map<string, string>();
  private readonly authenticating = new Map<string, Promise<string>>();

  constructor(
    readonly endpoints: readonly string[],
    readonly timeoutMs: number,
    private readonly auth: EtcdAuth | null,
  ) {}

  /** A unary call; resolves with the parsed reply or rejects with a StoreError or EtcdReplyError. */
  async call<T>(path: string, body: unknown, opts: CallOptions): Promise<T> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    const failures: string[] = [];
    const start = this.preferred;
    for (let i = 0; i < this.endpoints.length; i++) {
      const index = (start + i) % this.endpoints.length;
      const endpoint = this.endpoints[index]!;
      try {
        const reply = await this.attempt(endpoint, path, body, signal);
        this.preferred = index;
        return reply as T;
      } catch (e) {
        if (e instanceof EtcdReplyError) throw e;
        failures.push(`${endpoint}: ${this.reason(e, signal)}`);
        // The next operation starts past a failed endpoint: a member cut off the network (its
        // connections hang rather than being refused) would otherwise take every operation's
        // whole deadline, since the deadline runs out before the loop reaches another member.
        if (this.preferred === index) this.preferred = (index + 1) % this.endpoints.length;
        if (signal.aborted || (!opts.retryable && !isConnectError(e))) break;
      }
    }
    throw this.unavailable(failures);
  }

  /**
   * Opens a streaming call (a watch) on the first endpoint that answers, starting at the
   * preferred one. `signal` ends the stream; the response headers must arrive within the timeout.
   */
  async stream(
    path: string,
    body: unknown,
    signal: AbortSignal,
  ): Promise<{ endpoint: string; res: Response }> {
    const failures: string[] = [];
    for (let i = 0; i < this.endpoints.length && !signal.aborted; i++) {
      const index = (this.preferred + i) % this.endpoints.length;
      const endpoint = this.endpoints[index]!;
      const deadline = AbortSignal.timeout(this.timeoutMs);
      const headers = new AbortController();
      const abort = () => headers.abort();
      signal.addEventListener('abort', abort, { once: true });
      deadline.addEventListener('abort', abort, { once: true });
      try {
        const res = await this.send(endpoint, path, body, headers.signal);
        deadline.removeEventListener('abort', abort);
        if (!res.ok) {
          const text = await res.text();
          this.checkToken(endpoint, () => parseReply(endpoint, res.status, text));
          throw new Error(`HTTP ${res.status}`);
        }
        return { endpoint, res };
      } catch (e) {
        signal.removeEventListener('abort', abort);
        if (e instanceof EtcdReplyError) throw e;
        failures.push(`${endpoint}: ${this.reason(e, deadline)}`);
      }
    }
    throw this.unavailable(failures);
  }

  /** Drops an endpoint's token (the member no longer accepts it); the next call authenticates. */
  forgetToken(endpoint: string): void {
    this.tokens.delete(endpoint);
  }

  describeEndpoints(): string {
    return this.endpoints.join(',');
  }

  /** One request to one endpoint; a token the member no longer accepts is renewed once. */
  private async attempt(
    endpoint: string,
    path: string,
    body: unknown,
    signal: AbortSignal,
  ): Promise<unknown> {
    for (let retry = 0; ; retry++) {
      const res = await this.send(endpoint, path, body, signal);
      const text = await res.text();
      try {
        return this.checkToken(endpoint, () => parseReply(endpoint, res.status, text));
      } catch (e) {
        // The member restarted or the token expired (simple tokens live 5 minutes unused).
        if (retry > 0 || !(e instanceof EtcdReplyError && e.grpcCode === GRPC_UNAUTHENTICATED)) throw e;
      }
    }
  }

  /** Runs `parse`; when etcd rejects the token, forgets it before passing the error on. */
  private checkToken<T>(endpoint: string, parse: () => T): T {
    try {
      return parse();
    } catch (e) {
      if (e instanceof EtcdReplyError && e.grpcCode === GRPC_UNAUTHENTICATED) this.forgetToken(endpoint);
      throw e;
    }
  }

  private async send(endpoint: string, path: string, body: unknown, signal: AbortSignal): Promise<Response> {
    const token = await this.token(endpoint, signal);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== null) headers.authorization = token;
    return fetch(`${endpoint}${path}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      signal,
      redirect: 'error',
    });
  }

  /**
   * The endpoint's token. Authenticating costs etcd a bcrypt comparison (up to a second on a
   * busy machine), which may not fit in one operation's deadline: it runs on its own longer
   * deadline, shared by every operation waiting for it, so a timed-out operation still leaves
   * the token for the next one.
   */
  private async token(endpoint: string, signal: AbortSignal): Promise<string | null> {
    if (!this.auth) return null;
    const known = this.tokens.get(endpoint);
    if (known !== undefined) return known;
    let pending = this.authenticating.get(endpoint);
    if (!pending) {
      pending = this.authenticate(endpoint, this.auth).finally(() => this.authenticating.delete(endpoint));
      // Reported to whoever waits for it; nobody may be left waiting.
      pending.catch(() => undefined);
      this.authenticating.set(endpoint, pending);
    }
    return abortable(pending, signal);
  }

  private async authenticate(endpoint: string, auth: EtcdAuth): Promise<string> {
    const res = await fetch(`${endpoint}/v3/auth/authenticate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: auth.username, password: auth.password }),
      signal: AbortSignal.timeout(Math.max(AUTH_TIMEOUT_MS, this.timeoutMs)),
      redirect: 'error',
    });
    const reply = parseReply(endpoint, res.status, await res.text()) as { token?: string };
    if (!reply.token) throw new Error(`no token in the reply to authenticating as ${auth.username}`);
    this.tokens.set(endpoint, reply.token);
    return reply.token;
  }

  private reason(e: unknown, deadline: AbortSignal): string {
    if (deadline.aborted) return `no answer within ${this.timeoutMs} ms`;
    const cause = (e as { cause?: unknown }).cause;
    const code = errnoCode(cause);
    if (code !== null) return code;
    return cause instanceof Error ? cause.message : errorMessage(e);
  }

  private unavailable(failures: string[]): StoreError {
    return new StoreError(ErrorCodes.STORE_UNAVAILABLE, `etcd is unavailable (${failures.join('; ')})`);
  }
}

/** The JSON of a reply; an etcd error becomes an EtcdReplyError, anything else a plain Error. */
function parseReply(endpoint: string, status: number, text: string): unknown {
  let json: unknown;
  try {
    // A streaming method (lease keepalive) answers one JSON object per line.
    json = JSON.parse(text.split('\n', 1)[0]!);
  } catch {
    throw new Error(`HTTP ${status}, not JSON: ${text.slice(0, 80)}`);
  }
  const err = replyError(json);
  if (err) throw err;
  if (status < 200 || status > 299) throw new Error(`HTTP ${status} from ${endpoint}`);
  const result = (json as { result?: unknown }).result;
  return result ?? json;
}

/**
 * The gateway reports errors as {error, message, code} (unary) or {error: {grpc_code, message}}
 * (streams). Unavailable members (no leader, shutting down) are transport failures for us.
 */
function replyError(json: unknown): Error | null {
  if (json === null || typeof json !== 'object' || !('error' in json)) return null;
  const j = json as { error: unknown; message?: unknown; code?: unknown };
  const inner = typeof j.error === 'object' && j.error !== null ? (j.error as Record<string, unknown>) : null;
  const code = Number(inner ? inner.grpc_code : j.code);
  const message = String(inner ? inner.message : (j.message ?? j.error));
  if (!Number.isFinite(code) || code === 0) return null;
  if (code === 14 || code === 4 || code === 1) return new Error(message);
  return new EtcdReplyError(code, message);
}

/** `p`, or a rejection with the signal's reason as soon as it aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function isConnectError(e: unknown): boolean {
  const code = errnoCode((e as { cause?: unknown }).cause);
  return code !== null && CONNECT_ERRORS.has(code);
}

/** The errno-style code of a connection failure (also inside the AggregateError of happy eyeballs). */
function errnoCode(cause: unknown): string | null {
  if (cause === null || typeof cause !== 'object') return null;
  const c = cause as { code?: unknown; errors?: unknown };
  if (typeof c.code === 'string') return c.code;
  if (Array.isArray(c.errors)) {
    for (const inner of c.errors as unknown[]) {
      const code = errnoCode(inner);
      if (code !== null) return code;
    }
  }
  return null;
}
