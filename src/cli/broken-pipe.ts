/**
 * A closed stdout (`pgscale status | head -1`) must not end a command with an uncaught EPIPE and
 * a stack trace. Once the reader has gone, what the command would still print is dropped and the
 * command finishes as it would have (a foreground controller keeps running and stops its nodes
 * cleanly; a short command exits with its own code), as `git` or `ls` do when they ignore SIGPIPE.
 */
import type { Writable } from 'node:stream';

/** Makes writes to `stream` after a broken pipe no-ops instead of an uncaught 'error'. */
export function dropOutputOnBrokenPipe(stream: Writable & { write: Writable['write'] }): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    stream.write = (() => true) as Writable['write'];
  });
}
