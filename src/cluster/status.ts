/**
 * Reads the state of every node: from the data directory when the node is down, from SQL when it
 * runs (role, timeline, WAL positions, the WAL receiver, the archiver), and the replication view
 * of each group's primary (pg_stat_replication, slots) for lag. The JSON shape is documented in
 * docs/status.md; no secret is ever part of it.
 */
import type { NodeRef } from '../config/load.js';
import { parseLsn } from '../protocol/lsn.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REJOIN_MARKER, instancePaths, isProvisioned, isStandbyDir, runningPid } from './instance.js';
import { slotName } from './conf.js';
import type { ConnTarget } from './sql.js';
import { withClient } from './sql.js';

export type Role = 'primary' | 'replica';
/**
 * `fenced`: a former primary stopped by high availability (a failover) that must rejoin as a
 * standby (pg_rewind) before it runs again; as `patronictl list` shows it, never as a primary.
 */
export type NodeState = 'running' | 'starting' | 'stopped' | 'fenced' | 'unreachable' | 'not provisioned';

export interface ArchiveStatus {
  archivedCount: number;
  lastArchivedWal: string | null;
  lastArchivedAt: string | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedAt: string | null;
}

export interface NodeStatus {
  name: string;
  group: number;
  role: Role | null;
  state: NodeState;
  host: string;
  port: number;
  pid: number | null;
  timeline: number | null;
  /** Primary: current WAL position; replica: last replayed position. */
  lsn: string | null;
  receiveLsn: string | null;
  lagBytes: number | null;
  lagSeconds: number | null;
  streaming: boolean;
  /** Upstream node (replicas). */
  upstream: string | null;
  slot: { name: string; active: boolean; walStatus: string | null } | null;
  syncState: string | null;
  archive: ArchiveStatus | null;
  /**
   * Settings changed in its configuration that the running server takes only at a restart
   * (pg_settings.pending_restart; `pgscale restart --pending` applies them), sorted.
   */
  pendingRestart: string[];
  error: string | null;
}

interface NodeProbe {
  in_recovery: boolean;
  lsn: string | null;
  receive_lsn: string | null;
  timeline: number | null;
  wr_status: string | null;
  wr_slot: string | null;
  wr_sender_port: number | null;
  archived_count: string;
  last_archived_wal: string | null;
  last_archived_time: Date | null;
  failed_count: string;
  last_failed_wal: string | null;
  last_failed_time: Date | null;
  pending_restart: string[];
}

interface ReplRow {
  application_name: string;
  state: string;
  replay_lsn: string | null;
  replay_lag_s: number | null;
  sync_state: string;
}

interface SlotRow {
  slot_name: string;
  active: boolean;
  wal_status: string | null;
}

const PROBE = `
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text ELSE pg_current_wal_lsn()::text END AS lsn,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       CASE WHEN pg_is_in_recovery()
            THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline,
       (SELECT status FROM pg_stat_wal_receiver) AS wr_status,
       (SELECT slot_name FROM pg_stat_wal_receiver) AS wr_slot,
       (SELECT sender_port FROM pg_stat_wal_receiver) AS wr_sender_port,
       a.archived_count, a.last_archived_wal, a.last_archived_time, a.failed_count, a.last_failed_wal, a.last_failed_time,
       ARRAY(SELECT name::text FROM pg_settings WHERE pending_restart ORDER BY name) AS pending_restart
  FROM pg_stat_archiver a`;

export async function nodeStatuses(
  nodes: readonly NodeRef[],
  dataDir: string,
  target: (n: NodeRef) => ConnTarget,
): Promise<NodeStatus[]> {
  const base = await Promise.all(nodes.map((n) => probeNode(n, dataDir, target(n))));
  // A stopped node whose data directory still says primary while another node of its group runs
  // as the primary is a former primary being rejoined (pg_rewind removes standby.signal and our
  // marker while it works): fenced, never a second primary.
  for (const s of base) {
    if (s.state !== 'stopped' || s.role !== 'primary') continue;
    const other = base.find(
      (x) => x.group === s.group && x.name !== s.name && x.role === 'primary' && x.state === 'running',
    );
    if (other) {
      s.state = 'fenced';
      s.role = 'replica';
    }
  }
  // Lag and slot come from each group's primary.
  const groups = new Set(nodes.map((n) => n.group));
  for (const group of groups) {
    const primary = base.find((s) => s.group === group && s.role === 'primary' && s.state === 'running');
    if (!primary) continue;
    const pnode = nodes.find((n) => n.name === primary.name)!;
    let repl: ReplRow[] = [];
    let slots: SlotRow[] = [];
    try {
      await withClient(target(pnode), async (c) => {
        repl = (
          await c.query<ReplRow>(
            `SELECT application_name, state, replay_lsn::text, extract(epoch FROM replay_lag)::float8 AS replay_lag_s, sync_state
               FROM pg_stat_replication`,
          )
        ).rows;
        slots = (
          await c.query<SlotRow>(
            `SELECT slot_name, active, wal_status FROM pg_replication_slots WHERE slot_type = 'physical'`,
          )
        ).rows;
        const cur = await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        primary.lsn = cur.rows[0]?.lsn ?? primary.lsn;
      });
    } catch (e) {
      primary.error = (e as Error).message;
    }
    const plsn = parseLsn(primary.lsn);
    for (const s of base) {
      if (s.group !== group || s.name === primary.name) continue;
      const slot = slots.find((x) => x.slot_name === slotName(s.name));
      s.slot = slot ? { name: slot.slot_name, active: slot.active, walStatus: slot.wal_status } : null;
      const r = repl.find((x) => x.application_name === s.name);
      s.syncState = r?.sync_state ?? null;
      if (s.role === 'replica' && s.state === 'running') {
        s.upstream = primary.name;
        const rl = parseLsn(s.lsn);
        s.lagBytes = plsn !== null && rl !== null ? Math.max(0, Number(plsn - rl)) : null;
        s.lagSeconds = r ? (r.replay_lag_s ?? 0) : null;
      }
    }
  }
  return base;
}

async function probeNode(n: NodeRef, dataDir: string, t: ConnTarget): Promise<NodeStatus> {
  const { pgdata } = instancePaths(dataDir, n.name);
  const s: NodeStatus = {
    name: n.name,
    group: n.group,
    role: null,
    state: 'not provisioned',
    host: n.host,
    port: n.port,
    pid: null,
    timeline: null,
    lsn: null,
    receiveLsn: null,
    lagBytes: null,
    lagSeconds: null,
    streaming: false,
    upstream: null,
    slot: null,
    syncState: null,
    archive: null,
    pendingRestart: [],
    error: null,
  };
  if (!isProvisioned(pgdata)) return s;
  s.role = isStandbyDir(pgdata) ? 'replica' : 'primary';
  s.pid = runningPid(pgdata);
  if (s.pid === null) {
    s.state = existsSync(join(pgdata, REJOIN_MARKER)) ? 'fenced' : 'stopped';
    // Fenced: it holds a primary's WAL but may only come back as a standby.
    if (s.state === 'fenced') s.role = 'replica';
    return s;
  }
  try {
    const row = await withClient(t, async (c) => (await c.query<NodeProbe>(PROBE)).rows[0]!, 3000);
    s.state = 'running';
    s.role = row.in_recovery ? 'replica' : 'primary';
    s.lsn = row.lsn;
    s.receiveLsn = row.receive_lsn;
    s.timeline = row.timeline;
    s.streaming = row.in_recovery && row.wr_status === 'streaming';
    if (row.in_recovery && row.wr_slot) s.slot = { name: row.wr_slot, active: s.streaming, walStatus: null };
    if (!row.in_recovery) s.lagBytes = 0;
    s.pendingRestart = row.pending_restart;
    s.archive = {
      archivedCount: Number(row.archived_count),
      lastArchivedWal: row.last_archived_wal,
      lastArchivedAt: row.last_archived_time?.toISOString() ?? null,
      failedCount: Number(row.failed_count),
      lastFailedWal: row.last_failed_wal,
      lastFailedAt: row.last_failed_time?.toISOString() ?? null,
    };
  } catch (e) {
    // 57P03 cannot_connect_now: the postmaster runs but is starting up, or a standby has not
    // reached a consistent state yet (a rejoining former primary, right after a failover).
    s.state = (e as { code?: string }).code === '57P03' ? 'starting' : 'unreachable';
    s.error = (e as Error).message;
  }
  return s;
}
