/**
 * What the demo shows while it runs: on a terminal, one line per scenario rewritten in place
 * with a progress bar and live figures, then replaced by the scenario's result; otherwise
 * (a pipe, a CI log) plain lines only when something happens. Colours only on a terminal.
 */

export interface Progress {
  /** Starts a scenario's line. */
  begin(title: string): void;
  /** Fraction done (0–1) and live figures (terminal only; throttled). */
  update(fraction: number, figures: string): void;
  /** A line of its own (a stage finished): printed above the bar on a terminal. */
  note(line: string): void;
  /** Ends the scenario's line with its result. */
  end(status: 'ok' | 'skipped' | 'failed', line: string): void;
}

const BAR = 24;

export function createProgress(stream: NodeJS.WriteStream = process.stdout): Progress {
  const tty = stream.isTTY === true && process.env.TERM !== 'dumb';
  const colour = (code: number, s: string) => (tty && !process.env.NO_COLOR ? `\x1b[${code}m${s}\x1b[0m` : s);
  let title = '';
  let last = 0;
  const clear = () => stream.write('\r\x1b[K');
  const width = () => Math.max(40, (stream.columns || 100) - 1);
  return {
    begin(t) {
      title = t;
      if (tty) {
        stream.write(`  ${colour(1, title)} …`);
      } else {
        stream.write(`  ${title}…\n`);
      }
      last = 0;
    },
    update(fraction, figures) {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      const f = Math.min(1, Math.max(0, fraction));
      const filled = Math.round(f * BAR);
      const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR - filled)}] ${String(Math.round(f * 100)).padStart(3)}%`;
      clear();
      stream.write(`  ${colour(1, title)} ${bar} ${figures}`.slice(0, width() + 20));
    },
    note(line) {
      if (tty) {
        clear();
        stream.write(`    ${colour(2, line)}\n  ${colour(1, title)} …`);
      } else {
        stream.write(`    ${line}\n`);
      }
    },
    end(status, line) {
      const mark =
        status === 'ok'
          ? colour(32, 'ok')
          : status === 'skipped'
            ? colour(33, 'skipped')
            : colour(31, 'FAILED');
      if (tty) clear();
      stream.write(`  ${colour(1, title)}: ${mark} ${line}\n`);
    },
  };
}
