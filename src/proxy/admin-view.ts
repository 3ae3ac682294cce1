/**
 * What the admin console sees of the proxy and may ask it to do: handed to AdminSession (and the
 * SHOW tables) by the proxy that owns them, so that the console depends on this interface and not
 * on ProxyServer (which creates the console: importing it back would be a loop). What the program
 * running the proxy does for RELOAD and SHUTDOWN comes in separately, as AdminHooks.
 */
import type { UserSettingsTable } from './user-settings.js';
import type { ProxyConfig } from '../config/schema.js';
import type { Pool } from './backend/pool.js';
import type { ClientConn } from './frontend/client-conn.js';
import type { ReadRouter } from './read-router.js';
import type { CancelCounts } from './cancel-forwarder.js';
import type { Table } from './admin-show.js';

/** The admin commands that act on the proxy's pools and clients (every worker's, with workers). */
export type PoolCommand = 'PAUSE' | 'RESUME' | 'KILL';

export interface AdminView {
  readonly settings: ProxyConfig;
  readonly pools: ReadonlyMap<string, Pool>;
  readonly clients: ReadonlySet<ClientConn>;
  readonly routers: ReadonlyMap<Pool, ReadRouter>;
  readonly credentials: { users(): string[] };
  /** Per-user pool settings (SHOW USERS). */
  readonly users: UserSettingsTable;
  readonly paused: boolean;
  /** CancelRequests by what became of them (SHOW WORKERS). */
  readonly cancelCounts: CancelCounts;
  pauseAll(): void;
  resumeAll(): void;
  /** Closes every client and server connection of a database (KILL); how many clients. */
  kill(database: string): number;
  /** Stops the proxy alone (SHUTDOWN when the program gave no hook of its own). */
  stop(): Promise<void>;
}

/** What the program running the proxy does for RELOAD and SHUTDOWN. */
export interface AdminHooks {
  /** RELOAD: reads the configuration again; the settings that need a restart. */
  reload?: () => Promise<string[]>;
  /** SHUTDOWN: stops the whole program (default: the proxy alone stops). */
  shutdown?: () => void;
  /**
   * A message refusing SHUTDOWN, or null to allow it: inside `pgscale up` the controller owns the
   * proxy, so it refuses (and logs who asked).
   */
  refuseShutdown?: (who: { user: string; addr: string }) => string | null;
  /**
   * SHOW over every worker of `pgscale proxy --workers N`, merged (admin-merge.ts); without it the
   * console shows this process's own table.
   */
  show?: (what: string) => Promise<Table | null>;
  /** PAUSE, RESUME or KILL on every worker; KILL's count of clients closed. */
  everyWorker?: (cmd: PoolCommand, arg: string | undefined) => Promise<number>;
}
