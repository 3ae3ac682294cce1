/**
 * backup.schedule: when the controller takes a backup on its own. A spec is `every N` with m, h
 * or d (`every 6h`: N after the last backup of that kind), `daily HH:MM`, or a weekday `sun
 * HH:MM` (the controller's local time). A kind is due when no backup of it (or of a larger kind:
 * a full one counts as a diff and an incr) ended at or after its last scheduled moment; a group
 * with no backup at all is due at once, and its first backup is a full one. Pure functions of the
 * specs, the last backups and the time.
 */
import { SCHEDULE_RE } from '../config/schema.js';

export type BackupType = 'full' | 'diff' | 'incr';
export const BACKUP_TYPES: readonly BackupType[] = ['full', 'diff', 'incr'];

export type Spec =
  { kind: 'every'; ms: number } | { kind: 'at'; weekday: number | null; hour: number; minute: number };

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses a spec the schema has validated; null for anything else. */
export function parseSpec(spec: string): Spec | null {
  if (!SCHEDULE_RE.test(spec)) return null;
  const every = /^every (\d+)([mhd])$/.exec(spec);
  if (every) return { kind: 'every', ms: Number(every[1]) * UNIT_MS[every[2] as 'm' | 'h' | 'd'] };
  const [day = '', time = ''] = spec.split(' ');
  const [hour = 0, minute = 0] = time.split(':').map(Number);
  return { kind: 'at', weekday: day === 'daily' ? null : DAYS.indexOf(day), hour, minute };
}

/** The last scheduled moment at or before `now` of an `at` spec. */
export function lastOccurrence(s: Extract<Spec, { kind: 'at' }>, now: Date): Date {
  const d = new Date(now);
  d.setHours(s.hour, s.minute, 0, 0);
  if (d > now) d.setDate(d.getDate() - 1);
  if (s.weekday !== null) while (d.getDay() !== s.weekday) d.setDate(d.getDate() - 1);
  return d;
}

export function isDue(s: Spec, last: Date | null, now: Date): boolean {
  if (last === null) return true;
  return s.kind === 'every' ? now.getTime() - last.getTime() >= s.ms : last < lastOccurrence(s, now);
}

/**
 * Which backup a group needs now, if any. `last` holds the end of the group's newest backup of
 * each kind, or of the last attempt (so a failing one waits for its next moment).
 */
export function dueBackup(
  schedule: Record<BackupType, string | null>,
  last: Record<BackupType, Date | null>,
  now: Date,
): BackupType | null {
  const latest = (...ds: (Date | null)[]) =>
    ds.reduce<Date | null>((a, b) => (b !== null && (a === null || b > a) ? b : a), null);
  const covering: Record<BackupType, Date | null> = {
    full: last.full,
    diff: latest(last.full, last.diff),
    incr: latest(last.full, last.diff, last.incr),
  };
  for (const t of BACKUP_TYPES) {
    const spec = schedule[t] === null ? null : parseSpec(schedule[t]);
    if (spec && isDue(spec, covering[t], now)) return covering.incr === null ? 'full' : t;
  }
  return null;
}
