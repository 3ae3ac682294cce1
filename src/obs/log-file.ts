/**
 * A log file that rotates by size, for the controller's <data_dir>/logs/controller.log: when it
 * reaches `maxBytes` its content moves to `<file>.1` (the older ones to .2 … .keep, the oldest
 * dropped) and the file starts again empty. Rotation copies then truncates (as logrotate's
 * copytruncate) rather than renaming: the controller's stdout and stderr are that same file,
 * opened by `up --detach` in append mode, and keep writing into it after a rotation instead of
 * into the rotated copy. Writes are synchronous (pino's sync destination), one line at a time.
 */
import {
  closeSync,
  copyFileSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

export interface RotationOptions {
  /** Rotate once the file reaches this many bytes. */
  maxBytes: number;
  /** Rotated files kept: <file>.1 (newest) … <file>.<keep>. */
  keep: number;
}

export class RotatingLogFile {
  private fd: number;
  private size: number;
  /** Rotations done (for tests and status). */
  rotations = 0;

  constructor(
    readonly file: string,
    private readonly opts: RotationOptions,
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.fd = openSync(file, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
  }

  /** pino's DestinationStream. */
  write(line: string): boolean {
    writeSync(this.fd, line);
    this.size += Buffer.byteLength(line);
    if (this.size >= this.opts.maxBytes) this.rotateIfFull();
    return true;
  }

  close(): void {
    closeSync(this.fd);
  }

  private rotateIfFull(): void {
    try {
      // Other writers (the process's stderr) append to the same file: ask it for its size.
      this.size = fstatSync(this.fd).size;
      if (this.size < this.opts.maxBytes) return;
      const { keep } = this.opts;
      rmSync(`${this.file}.${keep}`, { force: true });
      for (let i = keep - 1; i >= 1; i--) {
        if (existsSync(`${this.file}.${i}`)) renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
      }
      if (keep >= 1) copyFileSync(this.file, `${this.file}.1`);
      ftruncateSync(this.fd, 0);
      this.size = 0;
      this.rotations++;
    } catch {
      // A full disk or a vanished directory must not stop the controller: log on, try next time.
      this.size = 0;
    }
  }
}

/** Whether file descriptor `fd` writes to `file` (same device and inode). */
export function fdIsFile(fd: number, file: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = statSync(file);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}
