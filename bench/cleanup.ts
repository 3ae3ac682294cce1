/**
 * Teardown for the benchmark: every process started and every temporary directory created
 * registers an asynchronous undo (graceful: SIGTERM, pg_ctl stop, rm) and a synchronous fallback
 * (SIGKILL, pg_ctl stop -m immediate, rm). The undos run last-in first-out at the end of the run,
 * on an exception, and on SIGINT/SIGTERM/SIGHUP; a second signal, or a process exit with work
 * still registered, runs the synchronous fallbacks, so that nothing we started outlives us.
 */

interface Task {
  readonly name: string;
  readonly undo: () => Promise<void>;
  readonly undoSync: () => void;
}

const tasks: Task[] = [];
let running: Promise<void> | null = null;
let signalled: NodeJS.Signals | null = null;

/** The signal that interrupted the run, if any (errors after it are consequences, not news). */
export function interruptedBy(): NodeJS.Signals | null {
  return signalled;
}

/** Registers an undo; the returned function removes it (after the caller cleaned up itself). */
export function onCleanup(name: string, undo: () => Promise<void>, undoSync: () => void): () => void {
  const t: Task = { name, undo, undoSync };
  tasks.push(t);
  return () => {
    const i = tasks.indexOf(t);
    if (i >= 0) tasks.splice(i, 1);
  };
}

/** Runs every registered undo, newest first; failures are reported and the rest still run. */
export function runCleanup(): Promise<void> {
  running ??= (async () => {
    while (tasks.length > 0) {
      const t = tasks.pop()!;
      try {
        await t.undo();
      } catch (e) {
        process.stderr.write(`bench: cleanup of ${t.name} failed (${String(e)}); forcing it\n`);
        runSync(t);
      }
    }
  })().finally(() => {
    running = null;
  });
  return running;
}

function runSync(t: Task): void {
  try {
    t.undoSync();
  } catch (e) {
    process.stderr.write(`bench: forced cleanup of ${t.name} failed: ${String(e)}\n`);
  }
}

function runCleanupSync(): void {
  while (tasks.length > 0) runSync(tasks.pop()!);
}

/** Signal and exit handlers: cleanup before leaving, whatever the way out. */
export function installCleanupHandlers(): void {
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      process.stderr.write(`\nbench: ${sig} again; killing everything now\n`);
      runCleanupSync();
      process.exit(130);
    }
    signalled = sig;
    process.stderr.write(`\nbench: ${sig}; stopping servers and removing temporary files…\n`);
    runCleanup().then(
      () => process.exit(sig === 'SIGINT' ? 130 : 143),
      () => process.exit(1),
    );
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  process.on('exit', runCleanupSync);
}

/**
 * Runs a benchmark as the process entry point: parses its options (usage errors exit 2 with the
 * usage text, --help prints it), installs the clean-up handlers, runs it, reports a failure
 * (unless the user interrupted it), always undoes what the run started, and sets the exit code.
 */
export async function runMain<O>(
  parseOptions: (argv: string[]) => O | null,
  usage: string,
  main: (options: O) => Promise<number>,
): Promise<void> {
  let code = 1;
  try {
    let o: O | null;
    try {
      o = parseOptions(process.argv.slice(2));
    } catch (e) {
      process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n\n${usage}`);
      process.exitCode = 2;
      return;
    }
    if (!o) {
      process.stdout.write(usage);
      process.exitCode = 0;
      return;
    }
    installCleanupHandlers();
    code = await main(o);
  } catch (e) {
    if (!interruptedBy())
      process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    code = 1;
  } finally {
    await runCleanup();
  }
  process.exitCode = code;
}
