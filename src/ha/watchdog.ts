/**
 * The host's watchdog (Linux `/dev/watchdog`, as Patroni uses it): while a primary runs on this
 * host, the agent keeps the device alive right after each keep-alive of its session that etcd
 * took. An agent that freezes as a whole (SIGSTOP, a stalled host, a blocked event loop) stops
 * keeping it alive, and the kernel resets the host before the session's TTL runs out — before
 * anyone may promote a standby elsewhere. Without a watchdog that one case is open
 * (docs/multi-host.md).
 *
 * The device's timeout must be under the TTL minus the guard's margin: Node has no ioctl, so the
 * timeout is set with util-linux's `wdctl --settimeout` before the device is opened, and read
 * back from sysfs. With no primary here (or at a clean stop) the device is closed with the magic
 * character 'V', which disarms it; an agent killed while its primary runs leaves it armed, as
 * Patroni's does: the host resets unless a new agent (systemd restarts it within a second)
 * opens it again in time.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { ErrorCodes, PgscaleError, errorMessage } from '../errors.js';
import { guardMarginMs } from './agent-session.js';
import type { Logger } from '../obs/logger.js';

export type WatchdogMode = 'off' | 'automatic' | 'required';

export interface WatchdogOptions {
  readonly mode: WatchdogMode;
  readonly device: string;
  /** The timeout the device must have (s): under the session's TTL minus the guard's margin. */
  readonly timeoutS: number;
  /** Where the device's class attributes are (tests point it elsewhere). */
  readonly sysfs?: string;
  /** Sets the device's timeout (default: `wdctl --settimeout`); tests pass their own. */
  readonly setTimeout?: (device: string, seconds: number) => void;
}

/** Why the watchdog cannot be used, or null when it can. */
export type WatchdogProblem = string | null;

export class Watchdog {
  private fd: number | null = null;
  private warned = false;
  /** Keep-alives written since the device was opened (for status and tests). */
  pings = 0;

  constructor(
    private readonly o: WatchdogOptions,
    private readonly log: Logger,
  ) {}

  get active(): boolean {
    return this.fd !== null;
  }

  get mode(): WatchdogMode {
    return this.o.mode;
  }

  /**
   * Checks at the agent's start that the device can do its job: it exists, it is writable, and
   * its timeout is (or can be set) short enough. `required` makes any problem fatal to the agent.
   */
  check(): WatchdogProblem {
    if (this.o.mode === 'off') return null;
    if (!existsSync(this.o.device))
      return `${this.o.device} does not exist (load a driver: modprobe softdog)`;
    const timeout = this.readTimeout();
    if (timeout !== null && timeout <= this.o.timeoutS) return null;
    try {
      (this.o.setTimeout ?? wdctlSetTimeout)(this.o.device, this.o.timeoutS);
    } catch (e) {
      return `the timeout of ${this.o.device} could not be set to ${this.o.timeoutS} s (${errorMessage(e)})`;
    }
    const after = this.readTimeout();
    if (after === null) return `the timeout of ${this.o.device} cannot be read (${this.timeoutFile()})`;
    if (after > this.o.timeoutS)
      return `${this.o.device}'s timeout is ${after} s, over the ${this.o.timeoutS} s the TTL allows`;
    return null;
  }

  /** Opens (arms) the device if it is not open: a primary runs here. False when it cannot. */
  activate(): boolean {
    if (this.o.mode === 'off') return false;
    if (this.fd !== null) return true;
    try {
      // Never created nor truncated (O_APPEND means nothing to a character device).
      this.fd = openSync(this.o.device, constants.O_WRONLY | constants.O_APPEND);
      this.pings = 0;
      this.keepalive();
      this.log.info(`watchdog ${this.o.device} armed (timeout ${this.o.timeoutS} s)`);
      return true;
    } catch (e) {
      this.fd = null;
      if (!this.warned) this.log.error(`watchdog ${this.o.device} cannot be opened (${errorMessage(e)})`);
      this.warned = true;
      return false;
    }
  }

  /** One keep-alive: the session was renewed, so the host may run its primary a TTL more. */
  keepalive(): void {
    if (this.fd === null) return;
    try {
      writeSync(this.fd, '1');
      this.pings++;
    } catch (e) {
      this.log.error(`watchdog ${this.o.device}: keep-alive failed (${errorMessage(e)})`);
    }
  }

  /** Disarms and closes the device (no primary here any more, or a clean stop). */
  disable(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      writeSync(fd, 'V');
    } catch {
      // A device that does not take the magic character stays armed: nothing more to do here.
    }
    closeSync(fd);
    this.log.info(`watchdog ${this.o.device} disarmed`);
  }

  private timeoutFile(): string {
    return `${this.o.sysfs ?? '/sys/class/watchdog'}/${basename(this.o.device) === 'watchdog' ? 'watchdog0' : basename(this.o.device)}/timeout`;
  }

  private readTimeout(): number | null {
    try {
      const n = Number(readFileSync(this.timeoutFile(), 'utf8').trim());
      return Number.isFinite(n) && n > 0 ? n : null;
    } catch {
      return null;
    }
  }
}

function wdctlSetTimeout(device: string, seconds: number): void {
  execFileSync('wdctl', ['--settimeout', String(Math.floor(seconds)), device], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 5000,
  });
}

/** The device's timeout for a session TTL (ms): the TTL less the guard's margin, whole seconds. */
export function watchdogTimeoutS(ttlMs: number): number {
  return Math.max(1, Math.floor((ttlMs - guardMarginMs(ttlMs)) / 1000));
}

/**
 * The agent's watchdog from `ha.watchdog`, checked: null when off, or when `automatic` finds no
 * working device (said once in the log); a clear error when `required` does not.
 */
export function hostWatchdog(
  cfg: { readonly mode: WatchdogMode; readonly device: string },
  ttlMs: number,
  log: Logger,
  extra: Pick<WatchdogOptions, 'sysfs' | 'setTimeout'> = {},
): Watchdog | null {
  if (cfg.mode === 'off') return null;
  const wd = new Watchdog({ ...cfg, ...extra, timeoutS: watchdogTimeoutS(ttlMs) }, log);
  const problem = wd.check();
  if (problem === null) return wd;
  if (cfg.mode === 'required')
    throw new PgscaleError(ErrorCodes.CONFIG_INVALID, `ha.watchdog.mode is required, but ${problem}`);
  log.info(
    `no watchdog: ${problem} (ha.watchdog.mode: automatic; docs/multi-host.md says what that leaves open)`,
  );
  return null;
}
