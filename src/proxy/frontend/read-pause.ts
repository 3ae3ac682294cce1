/**
 * The reasons for which a client's socket is not read. Several parts stop a client independently
 * (waiting for a server, a server that reads slowly, the LISTEN fan-out, the message budget) and
 * one resuming must not undo another's pause, so the client connection keeps them as bits and
 * reads again only when none is left.
 */
export const ReadPause = {
  /** Waiting for a server connection. */
  waitingForServer: 1,
  /** The server's socket is backlogged. */
  serverBusy: 2,
  /** A LISTEN is being set up on the fan-out connection. */
  listen: 4,
  /** A large message waits for room in the proxy's message budget. */
  budget: 8,
} as const;
export type ReadPause = (typeof ReadPause)[keyof typeof ReadPause];
