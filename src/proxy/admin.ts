/**
 * The admin console: database "pgscale" (or "pgbouncer", for tools written for PgBouncer) on the
 * proxy port. Admin users may run every command; stats users only SHOW (tables in admin-show.ts).
 * Commands run one at a time in the order they arrived, so a client that pipelines several
 * queries in one write gets its answers in that order even when one of them (RELOAD) waits.
 * The proxy and the program's RELOAD/SHUTDOWN hooks come in through the constructor
 * (admin-view.ts), so this module does not import the proxy server that creates it.
 */
import type { TypedFrame } from '../protocol/framer.js';
import { decodeQuery } from '../protocol/frontend-messages.js';
import { encodeBackendMessage } from '../protocol/backend-messages.js';
import { buildErrorResponse, buildNoticeResponse } from '../protocol/error-response.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { ClientConn, ClientSessionLike } from './frontend/client-conn.js';
import type { AdminHooks, AdminView, PoolCommand } from './admin-view.js';
import type { Pool } from './backend/pool.js';
import { dataRow, rowDescription, showTable } from './admin-show.js';

export const ADMIN_DATABASES = new Set(['pgscale', 'pgbouncer']);

/** The ParameterStatus values the admin console reports at login. */
export function adminParams(): Map<string, string> {
  return new Map([
    ['server_version', '16.0 (pgscale)'],
    ['server_encoding', 'UTF8'],
    ['client_encoding', 'UTF8'],
    ['DateStyle', 'ISO, MDY'],
    ['integer_datetimes', 'on'],
    ['standard_conforming_strings', 'on'],
    ['TimeZone', 'UTC'],
    ['application_name', ''],
  ]);
}

const READY = encodeBackendMessage({ name: 'ReadyForQuery', status: 'I' });

export class AdminSession implements ClientSessionLike {
  /** The commands not yet answered run after this one (pipelined queries, in order). */
  private tail: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly proxy: AdminView,
    private readonly hooks: AdminHooks,
    private readonly client: ClientConn,
    private readonly admin: boolean,
  ) {}

  onClientFrames(frames: TypedFrame[]): void {
    for (const f of frames) {
      if (f.type === 'X') return this.client.fail();
      if (f.type !== 'Q') {
        const reply = Buffer.concat([
          buildErrorResponse(
            'ERROR',
            SqlState.FEATURE_NOT_SUPPORTED,
            'the admin console accepts simple queries only',
          ),
          READY,
        ]);
        this.enqueue(() => Promise.resolve(reply));
        continue;
      }
      const q = decodeQuery(f.payload);
      if (!q.ok) return this.client.fail(buildErrorResponse('FATAL', q.sqlstate, q.message));
      const sql = q.value.query;
      this.enqueue(() => this.run(sql));
    }
  }

  close(): void {
    this.closed = true;
  }

  /** Runs `work` after everything queued before it and sends its reply. */
  private enqueue(work: () => Promise<Buffer | null>): void {
    this.tail = this.tail.then(async () => {
      if (this.closed) return;
      const reply = await work();
      if (reply && !this.closed) this.client.send(reply);
    });
  }

  private async run(sql: string): Promise<Buffer | null> {
    const words = sql
      .trim()
      .replace(/;+\s*$/, '')
      .split(/\s+/);
    const cmd = (words[0] ?? '').toUpperCase();
    const arg = words[1];
    const parts: Buffer[] = [];
    const done = (tag: string) => parts.push(encodeBackendMessage({ name: 'CommandComplete', tag }));
    const error = (code: string, msg: string) => parts.push(buildErrorResponse('ERROR', code, msg));
    const hooks = this.hooks;
    try {
      if (cmd === '') {
        parts.push(encodeBackendMessage({ name: 'EmptyQueryResponse' }));
      } else if (cmd === 'SHOW' && arg) {
        const what = arg.toUpperCase();
        const table = hooks.show ? await hooks.show(what) : showTable(this.proxy, what);
        if (!table) error(SqlState.SYNTAX_ERROR, `unknown SHOW item "${arg}"; try SHOW HELP`);
        else {
          parts.push(rowDescription(table.columns));
          for (const r of table.rows) parts.push(dataRow(r));
          done(`SHOW`);
        }
      } else if (!this.admin) {
        error(SqlState.INSUFFICIENT_PRIVILEGE, 'admin console: only SHOW is allowed for stats users');
      } else if (cmd === 'PAUSE' || cmd === 'RESUME' || (cmd === 'KILL' && arg)) {
        if (hooks.everyWorker) await hooks.everyWorker(cmd, arg);
        else runPoolCommand(this.proxy, cmd, arg);
        done(cmd);
      } else if (cmd === 'RELOAD') {
        const restart = hooks.reload ? await hooks.reload() : [];
        for (const r of restart) {
          parts.push(buildNoticeResponse('NOTICE', '01000', `${r} changed: takes effect after a restart`));
        }
        done('RELOAD');
      } else if (cmd === 'SHUTDOWN') {
        const refused = hooks.refuseShutdown?.({ user: this.client.user, addr: this.client.remote });
        if (typeof refused === 'string') {
          error(SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE, refused);
        } else {
          done('SHUTDOWN');
          parts.push(READY);
          this.client.send(Buffer.concat(parts));
          setImmediate(() => (hooks.shutdown ? hooks.shutdown() : void this.proxy.stop()));
          return null;
        }
      } else {
        error(SqlState.SYNTAX_ERROR, `unknown admin command "${words.slice(0, 2).join(' ')}"; try SHOW HELP`);
      }
    } catch (e) {
      error(SqlState.INTERNAL_ERROR, (e as Error).message);
    }
    parts.push(READY);
    return Buffer.concat(parts);
  }
}

/** PAUSE [db], RESUME [db] or KILL db on this process's proxy; KILL's count of clients closed. */
export function runPoolCommand(proxy: AdminView, cmd: PoolCommand, arg: string | undefined): number {
  const forPools = (db: string, fn: (p: Pool) => void) => {
    for (const p of proxy.pools.values()) if (p.database === db) fn(p);
  };
  if (cmd === 'KILL') return arg ? proxy.kill(arg) : 0;
  if (cmd === 'PAUSE') {
    if (arg) forPools(arg, (p) => p.pause());
    else proxy.pauseAll();
  } else if (arg) forPools(arg, (p) => p.resume());
  else proxy.resumeAll();
  return 0;
}
