/**
 * What the demo must undo, whatever the way out: every process started and every directory or
 * cgroup created registers an asynchronous undo (graceful: stop the controller, `pg_ctl stop`,
 * rm) and a synchronous fallback (SIGKILL, `pg_ctl stop -m immediate`, rm). The undos run newest
 * first at the end of the run, on an exception and on SIGINT/SIGTERM/SIGHUP; a second signal, or
 * a process exit with work still registered, runs the synchronous fallbacks, so that nothing the
 * demo started outlives it (unless it was asked to keep the cluster).
 */

interface Task {
  readonly name: string;
  readonly undo: () => Promise<void>;
  readonly undoSync: () => void;
}

export class Cleanup {
  private readonly tasks: Task[] = [];
  private running: Promise<void> | null = null;
  private signalled: NodeJS.Signals | null = null;
  private readonly signalHandlers: [NodeJS.Signals, (sig: NodeJS.Signals) => void][] = [];
  private exitHandler: (() => void) | null = null;

  constructor(private readonly warn: (line: string) => void) {}

  /** The signal that interrupted the run, if any (errors after it are consequences, not news). */
  get interruptedBy(): NodeJS.Signals | null {
    return this.signalled;
  }

  /** Registers an undo; the returned function removes it (after the caller cleaned up itself). */
  add(name: string, undo: () => Promise<void>, undoSync: () => void): () => void {
    const t: Task = { name, undo, undoSync };
    this.tasks.push(t);
    return () => {
      const i = this.tasks.indexOf(t);
      if (i >= 0) this.tasks.splice(i, 1);
    };
  }

  /** Runs every registered undo, newest first; a failed one is forced, and the rest still run. */
  run(): Promise<void> {
    this.running ??= (async () => {
      while (this.tasks.length > 0) {
        const t = this.tasks.pop()!;
        const started = Date.now();
        try {
          await t.undo();
          if (process.env.PGSCALE_DEBUG) this.warn(`cleanup of ${t.name}: ${Date.now() - started} ms`);
        } catch (e) {
          this.warn(`cleanup of ${t.name} failed (${String(e)}); forcing it`);
          this.runOne(t);
        }
      }
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  runSync(): void {
    while (this.tasks.length > 0) this.runOne(this.tasks.pop()!);
  }

  private runOne(t: Task): void {
    try {
      t.undoSync();
    } catch (e) {
      this.warn(`forced cleanup of ${t.name} failed: ${String(e)}`);
    }
  }

  /**
   * Signal and exit handlers: the first signal calls `onSignal` (which should make the run stop
   * and clean up); a second one forces every undo at once and exits.
   */
  install(onSignal: (sig: NodeJS.Signals) => void): void {
    const handler = (sig: NodeJS.Signals) => {
      if (this.signalled) {
        this.warn(`${sig} again; killing everything now`);
        this.runSync();
        process.exit(130);
      }
      this.signalled = sig;
      onSignal(sig);
    };
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(sig, handler);
      this.signalHandlers.push([sig, handler]);
    }
    this.exitHandler = () => this.runSync();
    process.on('exit', this.exitHandler);
  }

  uninstall(): void {
    for (const [sig, h] of this.signalHandlers) process.off(sig, h);
    this.signalHandlers.length = 0;
    if (this.exitHandler) process.off('exit', this.exitHandler);
    this.exitHandler = null;
  }
}
