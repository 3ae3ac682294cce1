/**
 * Cancel requests on their way to servers: each goes over a connection of its own to the server
 * running the client's work (one per leg of the running query), at most a bounded number at once
 * across the proxy (a flood of cancel requests must not become a flood of connections).
 */
import { connect as netConnect } from 'node:net';
import { encodeCancelRequest } from '../protocol/startup-messages.js';
import type { ServerConn } from './backend/server-conn.js';

const MAX_CONCURRENT_CANCELS = 64;

export class CancelForwarder {
  private inFlight = 0;

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
