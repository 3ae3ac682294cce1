/**
 * The target of `pgscale restore --to`: `latest` (the end of the archived WAL), an LSN (`0/3000060`)
 * or a time (ISO 8601 or PostgreSQL's `YYYY-MM-DD HH:MM:SS[.ffffff][+TZ]`; without a zone, the
 * local time of this machine). A time is handed to PostgreSQL in UTC with microseconds, so what
 * the user named and what recovery stops at are the same instant.
 */
import { UsageError } from '../errors.js';

export type RestoreTarget =
  { type: 'default' } | { type: 'lsn'; target: string } | { type: 'time'; target: string; at: Date };

const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
const TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d{1,6})?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

export function parseTarget(to: string | undefined): RestoreTarget {
  if (to === undefined || to === '') {
    throw new UsageError(
      'name the restore target: --to latest, --to LSN (0/3000060) or --to TIME (2026-12-07T14:00:00Z)',
    );
  }
  if (to === 'latest') return { type: 'default' };
  if (LSN.test(to)) return { type: 'lsn', target: to.toUpperCase() };
  const m = TIME.exec(to.trim());
  if (m) {
    const [, day, time, frac = '', zone] = m;
    const z =
      zone === undefined
        ? ''
        : zone.toUpperCase() === 'Z'
          ? 'Z'
          : zone.length === 3
            ? `${zone}:00`
            : zone.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
    const at = new Date(`${day}T${time!.length === 5 ? `${time}:00` : time}${frac.slice(0, 4)}${z}`);
    if (!Number.isNaN(at.getTime())) {
      // Microseconds past the milliseconds Date keeps are carried over as written.
      const micro = frac.length > 4 ? frac.slice(4).padEnd(3, '0') : '000';
      const iso = at.toISOString(); // 2026-12-07T14:00:00.123Z
      return { type: 'time', target: `${iso.slice(0, 10)} ${iso.slice(11, 23)}${micro}+00`, at };
    }
  }
  throw new UsageError(
    `--to "${to}" is not a restore target: use latest, an LSN such as 0/3000060, or a time such as 2026-12-07T14:00:00Z`,
  );
}
