/**
 * The logger: pino, JSON lines, one per event, to stderr or any stream. Components take child
 * loggers carrying `{component, node, group}` so that a line says where it comes from. Nothing
 * named like a secret (password, secret, passwd, token, authorization, in any letter case and at
 * any depth) is ever written: pino's `redact` censors the usual places cheaply, and a formatter
 * walks whatever is logged for the rest (deeper objects, arrays, other spellings).
 */
import { pino } from 'pino';
import type { DestinationStream, Level, Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** Keys whose values never reach a log line or an HTTP response (compared case-insensitively). */
export const SECRET_KEYS = ['password', 'secret', 'passwd', 'token', 'authorization'] as const;

export const REDACTED = '[Redacted]';

const SECRET_KEY_SET = new Set<string>(SECRET_KEYS);

export function isSecretKey(key: string): boolean {
  return SECRET_KEY_SET.has(key.toLowerCase());
}

/** pino `redact` paths: each secret key in three spellings at depths 0–3. */
function redactPaths(): string[] {
  const names = SECRET_KEYS.flatMap((k) => [k, k[0]!.toUpperCase() + k.slice(1), k.toUpperCase()]);
  const paths: string[] = [];
  for (let depth = 0; depth <= 3; depth++) {
    for (const n of names) paths.push(`${'*.'.repeat(depth)}${n}`);
  }
  return paths;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * A copy of `value` with every secret-named key's value replaced by `[Redacted]`, at any depth
 * (plain objects and arrays; other objects such as Errors and Buffers are left to their
 * serializers). Returns the same object when nothing needed changing.
 */
export function redactSecrets<T>(value: T, seen: WeakSet<object> = new WeakSet()): T {
  if (Array.isArray(value)) {
    if (seen.has(value)) return value;
    seen.add(value);
    let changed = false;
    const out = value.map((v: unknown) => {
      const r = redactSecrets(v, seen);
      if (r !== v) changed = true;
      return r;
    });
    return (changed ? out : value) as T;
  }
  if (!isPlainObject(value)) return value;
  if (seen.has(value)) return value;
  seen.add(value);
  let out: Record<string, unknown> | null = null;
  for (const [k, v] of Object.entries(value)) {
    const r = isSecretKey(k) && v !== undefined && v !== null ? REDACTED : redactSecrets(v, seen);
    if (r !== v) {
      out ??= { ...value };
      out[k] = r;
    }
  }
  return (out ?? value) as T;
}

export interface LoggerOptions {
  /** Minimum level (default: PGSCALE_LOG_LEVEL or `info`). */
  level?: Level | 'silent';
  /** Where lines go: a stream, or a file descriptor (default 2, stderr). Written synchronously. */
  destination?: DestinationStream | number;
  /** Fields on every line (e.g. `{ cluster: 'pgscale' }`). */
  base?: Record<string, unknown>;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest =
    typeof opts.destination === 'object'
      ? opts.destination
      : pino.destination({ dest: opts.destination ?? 2, sync: true });
  const level = opts.level ?? (process.env.PGSCALE_LOG_LEVEL as Level | undefined) ?? 'info';
  return pino(
    {
      level,
      base: { pid: process.pid, ...opts.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactPaths(), censor: REDACTED },
      hooks: {
        // A key given both as a binding (base or child) and in the call would appear twice in
        // the JSON line (pino concatenates them): drop it from the call when the values agree.
        logMethod(args, method) {
          const [first, ...rest] = args as unknown[];
          if (isPlainObject(first)) {
            const bound = this.bindings();
            const dup = Object.keys(first).filter((k) => k in bound && sameValue(bound[k], first[k]));
            if (dup.length > 0) {
              const copy = { ...first };
              for (const k of dup) delete copy[k];
              return method.apply(this, [copy, ...rest] as Parameters<typeof method>);
            }
          }
          return method.apply(this, args);
        },
      },
      formatters: {
        log: (obj) => redactSecrets(obj),
        bindings: (b) => redactSecrets(b),
      },
    },
    dest,
  );
}

/** Where a line comes from: the component, and the node and group it concerns when there is one. */
export interface LogContext {
  component: string;
  node?: string;
  group?: number;
}

/** A child logger with `ctx`, less the keys the parent already binds to the same values. */
export function childLogger(parent: Logger, ctx: LogContext | Record<string, unknown>): Logger {
  const bound = parent.bindings();
  const fresh = Object.fromEntries(
    Object.entries(ctx).filter(([k, v]) => !(k in bound && sameValue(bound[k], v))),
  );
  return parent.child(fresh);
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'object' && JSON.stringify(a) === JSON.stringify(b));
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/**
 * A destination that writes each pino line as text for a person: time, level, message, and the
 * error message when there is one (the JSON fields are already redacted when they arrive here).
 */
export function textDestination(out: { write(s: string): unknown }): DestinationStream {
  return {
    write(line: string) {
      let o: { time?: string; level?: number; msg?: string; err?: { message?: string } };
      try {
        o = JSON.parse(line) as typeof o;
      } catch {
        out.write(line);
        return;
      }
      const err = o.err?.message && !o.msg?.includes(o.err.message) ? `: ${o.err.message}` : '';
      out.write(`${o.time ?? ''} ${LEVEL_NAMES[o.level ?? 30] ?? o.level} ${o.msg ?? ''}${err}\n`);
    },
  };
}
