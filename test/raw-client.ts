/**
 * A raw-byte PostgreSQL protocol client for hostile-input tests: it opens a TCP socket, sends
 * whatever bytes a test builds (whole, or sliced into small segments with a tick between), and
 * reads the replies through the project's own backend Framer into decoded messages. Helpers
 * assert the outcomes the bad-input catalogue asks for (an ErrorResponse with a given SQLSTATE,
 * a close within a deadline, never a hang) and perform a real SCRAM-SHA-256 login with
 * `ScramClient`, so a test can authenticate and then send arbitrary post-auth bytes.
 *
 * Single-byte answers to SSLRequest/GSSENCRequest ('S'/'N'/'G') are not messages; `readByte`
 * takes them from the raw stream before anything is handed to the framer.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import assert from 'node:assert/strict';
import { Framer } from '../src/protocol/framer.js';
import { decodeBackendMessage } from '../src/protocol/backend-messages.js';
import type { BackendMessage } from '../src/protocol/backend-messages.js';
import { encodeStartupMessage } from '../src/protocol/startup-messages.js';
import { encodeAuthResponse } from '../src/protocol/auth-messages.js';
import { encodeFrontendMessage } from '../src/protocol/frontend-messages.js';
import type { FrontendMessage } from '../src/protocol/frontend-messages.js';
import { errorField } from '../src/protocol/error-response.js';
import type { ErrorResponse } from '../src/protocol/error-response.js';
import { ScramClient } from '../src/protocol/scram-client.js';
import { PROTOCOL_3_0 } from '../src/protocol/limits.js';

export interface RawMessage {
  /** The type byte as a character. */
  readonly type: string;
  readonly payload: Buffer;
  /** Decoded, or undefined when the codec refused it (kept raw for the test to look at). */
  readonly msg: BackendMessage | undefined;
}

export const DEFAULT_DEADLINE_MS = 2000;

/** A raw CancelRequest on a new connection (what every driver sends). */
export function sendCancel(port: number, pid: number, key: number): Promise<void> {
  const b = Buffer.alloc(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(80877102, 4);
  b.writeInt32BE(pid, 8);
  b.writeInt32BE(key, 12);
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.end(b));
    s.setTimeout(5000, () => s.destroy());
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Encodes frontend messages back to back (a pipeline in one buffer). */
export function fe(...ms: FrontendMessage[]): Buffer {
  return Buffer.concat(ms.map(encodeFrontendMessage));
}

/** A StartupMessage for the given parameters (protocol 3.0 unless told). */
export function startupPacket(params: Record<string, string>, version = PROTOCOL_3_0): Buffer {
  return encodeStartupMessage({ version, params: new Map(Object.entries(params)) });
}

/** The SQLSTATE of an ErrorResponse message, or undefined. */
export function sqlstateOf(m: RawMessage | undefined): string | undefined {
  if (m?.msg?.name !== 'ErrorResponse') return undefined;
  return errorField(m.msg, 'C');
}

export function messageOf(m: RawMessage | undefined): string | undefined {
  if (m?.msg?.name !== 'ErrorResponse') return undefined;
  return errorField(m.msg, 'M');
}

export class RawClient {
  socket: Socket;
  private readonly framer = Framer.backend({ knownTypesOnly: false });
  /** Bytes not yet given to the framer (so `readByte` can take negotiation answers). */
  private raw: Buffer[] = [];
  private readonly queue: RawMessage[] = [];
  private wake: (() => void) | null = null;
  private closedAt: number | null = null;
  private framingError: string | null = null;
  /** Every message received, in order (for diagnostics). */
  readonly received: RawMessage[] = [];

  private readonly onData = (chunk: Buffer) => {
    this.raw.push(chunk);
    this.poke();
  };

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closedAt = performance.now();
      this.poke();
    });
  }

  /** After an 'S' answer: runs a TLS handshake over the socket and reads and writes through it. */
  async startTls(opts: { ALPNProtocols?: string[] } = {}): Promise<void> {
    const plain = this.socket;
    plain.removeListener('data', this.onData);
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false, ...opts });
    secure.on('data', this.onData);
    secure.on('error', () => undefined);
    this.socket = secure;
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
      secure.once('close', () => reject(new Error('closed during the TLS handshake')));
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port });
      s.setNoDelay(true);
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(new RawClient(s));
      });
      s.once('error', reject);
    });
  }

  get closed(): boolean {
    return this.closedAt !== null;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private waitForActivity(deadline: number): Promise<boolean> {
    const left = deadline - performance.now();
    if (left <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve(false);
      }, left);
      this.wake = () => {
        clearTimeout(t);
        resolve(true);
      };
    });
  }

  /** Moves raw bytes into the framer and decoded messages into the queue. */
  private frame(): void {
    if (this.raw.length === 0 || this.framingError) return;
    const chunks = this.raw;
    this.raw = [];
    for (const c of chunks) {
      const r = this.framer.push(c);
      for (const f of r.frames) {
        if (f.kind !== 'typed') continue;
        const d = decodeBackendMessage(f.type, f.payload);
        const m: RawMessage = { type: f.type, payload: f.payload, msg: d.ok ? d.value : undefined };
        this.queue.push(m);
        this.received.push(m);
      }
      if (!r.ok) {
        this.framingError = r.message;
        return;
      }
    }
  }

  send(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Sends `bytes` in segments of `size` bytes, waiting `tickMs` (a macrotask at least) between. */
  async sendChunks(bytes: Buffer, size: number, tickMs = 0): Promise<void> {
    for (let i = 0; i < bytes.length; i += size) {
      if (this.socket.destroyed) return;
      await new Promise<void>((resolve) => this.socket.write(bytes.subarray(i, i + size), () => resolve()));
      await sleep(tickMs);
    }
  }

  /** One raw byte (the answer to SSLRequest/GSSENCRequest), or null on close/timeout. */
  async readByte(timeoutMs = DEFAULT_DEADLINE_MS): Promise<string | null> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const first = this.raw[0];
      if (first && first.length > 0) {
        const b = first[0]!;
        if (first.length === 1) this.raw.shift();
        else this.raw[0] = first.subarray(1);
        return String.fromCharCode(b);
      }
      if (this.closed) return null;
      if (!(await this.waitForActivity(deadline))) return null;
    }
  }

  /** The next message, or null when the connection closed (or the deadline passed) first. */
  async next(timeoutMs = DEFAULT_DEADLINE_MS): Promise<RawMessage | null> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.frame();
      const m = this.queue.shift();
      if (m) return m;
      if (this.framingError) throw new Error(`unframeable reply from the proxy: ${this.framingError}`);
      if (this.closed) return null;
      if (!(await this.waitForActivity(deadline))) return null;
    }
  }

  /** Reads messages until one of type `type` (returned) ; fails on close, timeout or an error. */
  async until(type: string, timeoutMs = DEFAULT_DEADLINE_MS): Promise<RawMessage[]> {
    const got: RawMessage[] = [];
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const m = await this.next(Math.max(1, deadline - performance.now()));
      if (!m) {
        assert.fail(
          `expected message "${type}", got ${this.closed ? 'a close' : 'nothing'} after [${got.map(describe).join(', ')}]`,
        );
      }
      got.push(m);
      if (m.type === type) return got;
    }
  }

  /**
   * Reads until an ErrorResponse and asserts its SQLSTATE (any of `sqlstate` if an array); only
   * the listed `allowBefore` message types may precede it. Returns the error.
   */
  async expectError(
    sqlstate: string | readonly string[],
    opts: { timeoutMs?: number; allowBefore?: string } = {},
  ): Promise<ErrorResponse> {
    const deadline = performance.now() + (opts.timeoutMs ?? DEFAULT_DEADLINE_MS);
    const seen: RawMessage[] = [];
    for (;;) {
      const m = await this.next(Math.max(1, deadline - performance.now()));
      if (!m) {
        assert.fail(
          `expected ErrorResponse ${String(sqlstate)}, got ${this.closed ? 'a close' : 'nothing (hang)'} after [${seen.map(describe).join(', ')}]`,
        );
      }
      if (m.type === 'E' && m.msg?.name === 'ErrorResponse') {
        const code = errorField(m.msg, 'C');
        const want = typeof sqlstate === 'string' ? [sqlstate] : sqlstate;
        assert.ok(
          code !== undefined && want.includes(code),
          `expected SQLSTATE ${want.join('|')}, got ${code}: ${errorField(m.msg, 'M')}`,
        );
        return m.msg;
      }
      assert.ok(
        (opts.allowBefore ?? '').includes(m.type),
        `unexpected message ${describe(m)} before the expected error ${String(sqlstate)}`,
      );
      seen.push(m);
    }
  }

  /**
   * Waits until the peer closes the connection, within `withinMs`; returns the messages that came
   * before the close. Fails (the never-a-hang rule) if the connection is still open then.
   */
  async expectClose(withinMs = DEFAULT_DEADLINE_MS): Promise<RawMessage[]> {
    const t0 = performance.now();
    const deadline = t0 + withinMs;
    const got: RawMessage[] = [];
    for (;;) {
      this.frame();
      got.push(...this.queue.splice(0));
      if (this.closed) return got;
      if (!(await this.waitForActivity(deadline))) {
        assert.fail(
          `connection still open ${Math.round(performance.now() - t0)} ms later (after [${got.map(describe).join(', ')}])`,
        );
      }
    }
  }

  /** Asserts a FATAL ErrorResponse with `sqlstate` and then a close, both within the deadline. */
  async expectFatalThenClose(
    sqlstate: string | readonly string[],
    opts: { withinMs?: number; allowBefore?: string } = {},
  ): Promise<ErrorResponse> {
    const within = opts.withinMs ?? DEFAULT_DEADLINE_MS;
    const t0 = performance.now();
    const e = await this.expectError(sqlstate, { timeoutMs: within, allowBefore: opts.allowBefore });
    assert.equal(errorField(e, 'S'), 'FATAL', 'a connection-ending error is FATAL');
    const after = await this.expectClose(Math.max(1, within - (performance.now() - t0)));
    assert.deepEqual(
      after.map((m) => m.type),
      [],
      'nothing after the FATAL error',
    );
    return e;
  }

  /** Asserts a close with no message at all (where the protocol forbids a reply). */
  async expectSilentClose(withinMs = DEFAULT_DEADLINE_MS): Promise<void> {
    const got = await this.expectClose(withinMs);
    assert.deepEqual(got.map(describe), [], 'closed without a reply');
    assert.equal(this.raw.length, 0, 'no stray bytes before the close');
  }

  /**
   * StartupMessage then a SCRAM-SHA-256 exchange; resolves with the messages after
   * AuthenticationOk up to ReadyForQuery (ParameterStatus, BackendKeyData, …).
   */
  async loginScram(
    params: Record<string, string>,
    password: string,
    opts: { version?: number; timeoutMs?: number; chunk?: number } = {},
  ): Promise<RawMessage[]> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    await this.scramUpToFinal(params, password, opts);
    const fin = await this.nextAuth(timeoutMs);
    assert.equal(fin.name, 'AuthenticationSASLFinal');
    if (fin.name !== 'AuthenticationSASLFinal') throw new Error('unreachable');
    const v = this.scram!.handleServerFinal(fin.data);
    assert.ok(v.ok, v.ok ? '' : v.message);
    const okMsg = await this.nextAuth(timeoutMs);
    assert.equal(okMsg.name, 'AuthenticationOk');
    return this.until('Z', timeoutMs);
  }

  /** The SCRAM client of the last `scramUpToFinal`. */
  scram: ScramClient | null = null;

  /**
   * StartupMessage, SASLInitialResponse and SASLResponse (the proof); the caller reads what the
   * proxy says next (SASLFinal, or an error). With `chunk`, every byte goes out in segments.
   */
  async scramUpToFinal(
    params: Record<string, string>,
    password: string,
    opts: { version?: number; timeoutMs?: number; chunk?: number } = {},
  ): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const out = (b: Buffer) => (opts.chunk ? this.sendChunks(b, opts.chunk) : Promise.resolve(this.send(b)));
    await out(startupPacket(params, opts.version));
    const sasl = await this.nextAuth(timeoutMs);
    assert.equal(sasl.name, 'AuthenticationSASL');
    const scram = new ScramClient({ password });
    this.scram = scram;
    await out(
      encodeAuthResponse({
        name: 'SASLInitialResponse',
        mechanism: scram.mechanism,
        data: scram.clientFirst(),
      }),
    );
    const cont = await this.nextAuth(timeoutMs);
    assert.equal(cont.name, 'AuthenticationSASLContinue');
    if (cont.name !== 'AuthenticationSASLContinue') throw new Error('unreachable');
    const final = await scram.handleServerFirst(cont.data);
    assert.ok(final.ok, final.ok ? '' : final.message);
    await out(encodeAuthResponse({ name: 'SASLResponse', data: final.value }));
  }

  /** The next Authentication request; fails on anything else (an ErrorResponse is shown). */
  async nextAuth(
    timeoutMs = DEFAULT_DEADLINE_MS,
  ): Promise<BackendMessage & { name: `Authentication${string}` }> {
    for (;;) {
      const m = await this.next(timeoutMs);
      if (!m) assert.fail(`expected an Authentication message, got ${this.closed ? 'a close' : 'nothing'}`);
      if (m.type === 'v') continue; // NegotiateProtocolVersion may precede it
      assert.equal(m.type, 'R', `expected an Authentication message, got ${describe(m)}`);
      const msg = m.msg;
      if (!msg || !msg.name.startsWith('Authentication')) assert.fail('undecodable Authentication message');
      return msg as BackendMessage & { name: `Authentication${string}` };
    }
  }

  /** A simple Query, read through ReadyForQuery; returns every message of the reply. */
  async query(sql: string, timeoutMs = 5000): Promise<RawMessage[]> {
    this.send(fe({ name: 'Query', query: sql }));
    return this.until('Z', timeoutMs);
  }

  /** Data rows of a reply as text columns. */
  static rows(reply: readonly RawMessage[]): (string | null)[][] {
    return reply
      .filter((m) => m.msg?.name === 'DataRow')
      .map((m) =>
        (m.msg as Extract<BackendMessage, { name: 'DataRow' }>).values.map(
          (v) => v?.toString('utf8') ?? null,
        ),
      );
  }

  /** Ends the connection abruptly (TCP RST). */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A one-line description of a message, for assertion messages. */
export function describe(m: RawMessage): string {
  if (m.msg?.name === 'ErrorResponse') return `E(${errorField(m.msg, 'C')}: ${errorField(m.msg, 'M')})`;
  return m.msg?.name ?? `?${m.type}`;
}
