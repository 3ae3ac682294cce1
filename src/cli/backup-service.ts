/**
 * The controller's backup scheduler (backup.schedule): every 30 s it asks pgBackRest for each
 * group's backups and takes the one that is due (src/backup/schedule.ts says which), one backup at
 * a time, from a standby when one streams. A failed backup is logged and waits for its next
 * scheduled moment; it never stops the controller. Retention is pgBackRest's
 * (repo1-retention-full, applied after each backup). GET /services shows the last outcome per group,
 * and `pgscale history` each scheduled backup (with high availability, which keeps the history).
 */
import { listBackups, takeBackup } from '../backup/backups.js';
import { BACKUP_TYPES, dueBackup } from '../backup/schedule.js';
import type { BackupType } from '../backup/schedule.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Service } from '../controller/service.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';

const TICK_MS = 30_000;

interface Outcome {
  type: BackupType;
  at: string;
  label: string | null;
  error: string | null;
}

export class BackupService implements Service {
  readonly name = 'backup';
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Per group and kind, the end of the last attempt (a failed one included). */
  private readonly attempts = new Map<string, Date>();
  private readonly last = new Map<number, Outcome>();

  constructor(
    private readonly cluster: Cluster,
    private readonly log: Logger,
    /** Writes an event into the history (`pgscale history`), when high availability keeps one. */
    private readonly record: (e: { group: number; event: string; detail: string }) => unknown = () =>
      undefined,
  ) {}

  start(): Promise<void> {
    this.stopped = false;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    this.tick();
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // A backup under way finishes (pgBackRest would leave a partial one to resume otherwise).
    await this.running;
  }

  status(): unknown {
    return { schedule: this.cluster.config.backup.schedule, last: Object.fromEntries(this.last) };
  }

  /** History is a record, never a reason to fail: a store that does not answer is skipped. */
  private note(group: number, event: string, detail: string): void {
    Promise.resolve(this.record({ group, event, detail })).catch(() => undefined);
  }

  private tick(): void {
    if (this.running || this.stopped) return;
    this.running = this.runDue()
      .catch((e: unknown) => this.log.warn({ err: e }, `backup schedule: ${errorMessage(e)}`))
      .finally(() => (this.running = null));
  }

  private async runDue(): Promise<void> {
    const schedule = this.cluster.config.backup.schedule;
    for (let group = 0; group < this.cluster.config.groups.length && !this.stopped; group++) {
      const [info] = await listBackups(this.cluster, [group]);
      const last = Object.fromEntries(
        BACKUP_TYPES.map((t) => {
          const ends = (info?.backups ?? []).filter((b) => b.type === t).map((b) => new Date(b.stop));
          const tried = this.attempts.get(`${group}/${t}`);
          if (tried) ends.push(tried);
          return [t, ends.length ? new Date(Math.max(...ends.map((d) => d.getTime()))) : null];
        }),
      ) as Record<BackupType, Date | null>;
      const type = dueBackup(schedule, last, new Date());
      if (!type) continue;
      this.log.info({ group, type }, `backup schedule: taking a ${type} backup of group ${group}`);
      try {
        const r = await takeBackup(this.cluster, group, type);
        this.last.set(group, { type, at: r.backup.stop, label: r.backup.label, error: null });
        this.log.info(
          { group, type, label: r.backup.label, from: r.from ?? 'primary' },
          `backup schedule: ${type} backup ${r.backup.label} of group ${group} done`,
        );
        this.note(
          group,
          'backup',
          `${type} backup ${r.backup.label} from ${r.from ?? 'the primary'} (scheduled)`,
        );
      } catch (e) {
        this.last.set(group, { type, at: new Date().toISOString(), label: null, error: errorMessage(e) });
        this.log.error(
          { err: e, group, type },
          `backup schedule: the ${type} backup of group ${group} failed`,
        );
        this.note(group, 'backup_failed', `${type} backup (scheduled): ${errorMessage(e).split('\n')[0]}`);
      }
      this.attempts.set(`${group}/${type}`, new Date());
    }
  }
}
