/**
 * Cancel requests, from the client's CancelRequest to the servers. The clients are kept by the
 * process id they were shown (cancel-key.ts); a request naming another instance (another worker
 * of `pgscale proxy --workers`) is handed to whoever sends it there, and the instance holding the
 * client checks the key. A CancelRequest never gets a reply (PostgreSQL's rule), so a forged or
 * unknown key does nothing and tells its sender nothing. The servers' own CancelRequests each go
 * over a connection of their own to the server running the client's work (one per leg of the
 * running query), at most a bounded number at once across the proxy (a flood of cancel requests
 * must not become a flood of connections).
 */
import { connect as netConnect } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { encodeCancelRequest } from '../protocol/startup-messages.js';
import type { ServerConn } from './backend/server-conn.js';
import type { ClientConn } from './frontend/client-conn.js';
import { cancelInstance, instanceOf } from './frontend/cancel-key.js';
import { Session } from './session.js';

const MAX_CONCURRENT_CANCELS = 64;

/** CancelRequests by what became of them (SHOW WORKERS, /metrics). */
export interface CancelCounts {
  /** For a client of this process, with its key, arrived here: its query was cancelled. */
  local: number;
  /** The same, sent on by another instance. */
  remote: number;
  /** Naming another instance: sent there. */
  forwarded: number;
  /** No such client here, or the wrong key: nothing done. */
  unmatched: number;
}

export class CancelForwarder {
  private inFlight = 0;
  private readonly byPid = new Map<number, ClientConn>();
  readonly counts: CancelCounts = { local: 0, remote: 0, forwarded: 0, unmatched: 0 };

  /** `toInstance`: sends a request for another instance's client there (none: dropped). */
  constructor(private readonly toInstance?: (processId: number, key: Buffer) => void) {}

  add(c: ClientConn): void {
    this.byPid.set(c.processId, c);
  }
  remove(c: ClientConn): void {
    if (this.byPid.get(c.processId) === c) this.byPid.delete(c.processId);
  }
  /** Whether a connected client holds this process id. */
  has(processId: number): boolean {
    return this.byPid.has(processId);
  }

  /**
   * A CancelRequest: the client's running query is cancelled on every server it runs on, if the
   * key is the client's. `fromOtherInstance`: another instance sent it on (never sent on again).
   */
  cancel(processId: number, key: Buffer, fromOtherInstance: boolean): void {
    if (instanceOf(processId) !== cancelInstance()) {
      if (this.toInstance && !fromOtherInstance) {
        this.counts.forwarded++;
        this.toInstance(processId, key);
      } else this.counts.unmatched++;
      return;
    }
    const c = this.byPid.get(processId);
    const expected = c?.visibleCancelKey;
    if (
      !c ||
      !(c.session instanceof Session) ||
      !expected ||
      key.length !== expected.length ||
      !timingSafeEqual(key, expected)
    ) {
      this.counts.unmatched++;
      return;
    }
    this.counts[fromOtherInstance ? 'remote' : 'local']++;
    // Every leg of the running query: a statement spread over several servers stops on all.
    for (const server of c.session.cancelTargets()) this.send(server);
  }

  /** Sends the server's own CancelRequest for the backend of `server` (dropped past the bound). */
  send(server: ServerConn): void {
    if (this.inFlight >= MAX_CONCURRENT_CANCELS) return;
    this.inFlight++;
    server.cancelsInFlight++;
    const s = netConnect({ host: server.target.host, port: server.target.port });
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      this.inFlight--;
      server.cancelsInFlight--;
      s.destroy();
    };
    s.setTimeout(5000, finish);
    s.on('error', finish);
    s.on('close', finish);
    s.on('connect', () =>
      s.write(encodeCancelRequest({ processId: server.backendPid, secretKey: server.backendKey })),
    );
  }
}
