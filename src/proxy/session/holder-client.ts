/**
 * What the server side of a session (ServerHolder, server-holder.ts) asks of its client side and
 * of the client connection.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import type { ReadPause } from '../frontend/read-pause.js';
import type { ForwardContext } from './context.js';
import type { ReplySink } from './server-leg.js';

/** What the server side may ask of the client side. */
export interface HolderClient extends ForwardContext {
  readonly closed: boolean;
  /** The client has sent messages not forwarded yet. */
  readonly hasInput: boolean;
  readonly routing: { replica: number; primary: number };
  /** Where the legs write the client's replies. */
  readonly sink: ReplySink;
  /** Takes the client's next messages (a server was attached, or given back). */
  drain(): void;
  /** Messages a replica never answered, to route again before anything the client sent since. */
  takeBack(frames: TypedFrame[]): void;
  flushClient(): void;
  /** What the client gave has left the process, unless more is queued (message budget). */
  reportFlushed(): void;
}

/** What the client connection does for the server side (a part of SessionHost). */
export interface ReadControl {
  terminate(fatal?: Buffer): void;
  pauseReading(reason: ReadPause): void;
  resumeReading(reason: ReadPause): void;
}
