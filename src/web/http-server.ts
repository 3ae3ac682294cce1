/** Small helpers shared by the HTTP servers of the controller (API, node health agents). */
import type { Server } from 'node:http';

/** Stops listening and closes every connection, keep-alive ones included; resolves when done. */
export function closeHttpServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
