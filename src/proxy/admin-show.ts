/**
 * The admin console's SHOW tables, as pure reads of the proxy's state. Column names follow
 * PgBouncer's where they exist (SHOW POOLS, CLIENTS, SERVERS, STATS, DATABASES, LISTS, MEM), so
 * dashboards and exporters written for PgBouncer keep working; SHOW NODES is pgscale's own.
 * Nothing secret is ever shown: passwords in the config are masked.
 */
import { encodeBackendMessage } from '../protocol/backend-messages.js';
import { formatLsn } from '../protocol/lsn.js';
import type { AdminView } from './admin-view.js';
import { Session } from './session.js';
import { memRows, listRows, serverCount } from './admin-mem.js';
import { cancelInstance } from './frontend/cancel-key.js';
import type { Cell } from './admin-mem.js';

export type { Cell };
export interface Table {
  columns: string[];
  rows: Cell[][];
}

const RELOADABLE = new Set([
  'default_pool_size',
  'min_pool_size',
  'max_client_conn',
  'max_db_connections',
  'node_concurrency',
  'query_wait_timeout',
  'client_login_timeout',
  'client_idle_timeout',
  'idle_transaction_timeout',
  'server_idle_timeout',
  'server_lifetime',
  'server_check_delay',
  'server_connect_timeout',
  'max_prepared_statements',
  'max_packet_size',
  'auth_type',
  'auth_file',
  'auth_query',
  'auth_user',
  'admin_users',
  'stats_users',
  'ignore_startup_parameters',
  'tls',
  'server_tls',
  'databases',
  'pool_mode',
]);

export function showTable(proxy: AdminView, what: string): Table | null {
  const pools = [...proxy.pools.values()];
  switch (what) {
    case 'HELP':
      return {
        columns: ['command'],
        rows: [
          'SHOW POOLS|CLIENTS|SERVERS|STATS|CONFIG|DATABASES|NODES|USERS|LISTS|MEM|WORKERS|VERSION',
          'PAUSE [db]',
          'RESUME [db]',
          'KILL db',
          'RELOAD',
          'SHUTDOWN',
        ].map((r) => [r]),
      };
    case 'VERSION':
      return { columns: ['version'], rows: [['pgscale proxy']] };
    case 'POOLS':
      return {
        columns: [
          'database',
          'user',
          'cl_active',
          'cl_waiting',
          'sv_active',
          'sv_idle',
          'sv_used',
          'sv_tested',
          'sv_login',
          'maxwait',
          'pool_mode',
          'paused',
          'node_concurrency',
        ],
        rows: pools.map((p) => {
          const sessions = [...proxy.clients]
            .map((c) => c.session)
            .filter((s): s is Session => s instanceof Session);
          const mine = sessions.filter((s) => s.pool === p);
          return [
            p.database,
            p.target.user,
            mine.filter((s) => s.state === 'active').length,
            p.waiting,
            p.active.size,
            p.idle.length,
            0,
            p.tested.size,
            p.total - p.active.size - p.idle.length - p.tested.size,
            0,
            p.settings.mode,
            p.paused,
            // Transactions the pool lets run on its server at once now (0: up to its size).
            p.conc.limit === Infinity ? 0 : Math.ceil(p.conc.learnt),
          ];
        }),
      };
    case 'CLIENTS':
      return {
        columns: [
          'type',
          'user',
          'database',
          'state',
          'addr',
          'connect_time',
          'tls',
          'application_name',
          'pinned',
          'queries',
          'xacts',
        ],
        rows: [...proxy.clients].map((c) => {
          const s = c.session instanceof Session ? c.session : null;
          return [
            'C',
            c.user,
            c.database,
            c.phase !== 'ready' ? 'login' : s ? s.state : 'admin',
            c.remote,
            new Date(Date.now() - (performance.now() - c.connectedAt)).toISOString(),
            c.tls,
            c.applicationName,
            s?.pinReason ?? null,
            s?.counters.queries ?? 0,
            s?.counters.xacts ?? 0,
          ];
        }),
      };
    case 'SERVERS':
      return {
        columns: [
          'type',
          'user',
          'database',
          'state',
          'addr',
          'port',
          'backend_pid',
          'prepared',
          'connect_time',
        ],
        rows: pools.flatMap((p) =>
          (
            [
              ...[...p.active].map((s) => ['active', s] as const),
              ...p.idle.map((s) => ['idle', s] as const),
              ...[...p.tested].map((s) => ['tested', s] as const),
            ] as const
          ).map(([state, s]) => [
            'S',
            p.target.user,
            p.database,
            state,
            p.target.host,
            p.target.port,
            s.backendPid,
            s.prepared.size,
            new Date(Date.now() - (performance.now() - s.createdAt)).toISOString(),
          ]),
        ),
      };
    case 'STATS':
      return {
        columns: [
          'database',
          'user',
          'total_xact_count',
          'total_query_count',
          'total_received',
          'total_sent',
          'total_xact_time',
          'total_query_time',
          'total_wait_time',
          'total_waits',
        ],
        rows: pools.map((p) => [
          p.database,
          p.target.user,
          p.stats.xacts,
          p.stats.queries,
          p.stats.bytesReceived,
          p.stats.bytesSent,
          p.stats.xactTimeUs,
          p.stats.queryTimeUs,
          p.stats.waitTimeUs,
          p.stats.waits,
        ]),
      };
    case 'DATABASES': {
      const c = proxy.settings;
      return {
        columns: ['name', 'host', 'port', 'database', 'force_user', 'pool_size', 'pool_mode', 'paused'],
        rows: Object.entries(c.databases).map(([name, d]) => [
          name,
          d.host,
          d.port,
          d.dbname ?? name,
          d.user ?? null,
          d.pool_size ?? c.default_pool_size,
          d.pool_mode ?? c.pool_mode,
          proxy.paused,
        ]),
      };
    }
    case 'NODES': {
      const rows: Cell[][] = [];
      for (const [pool, r] of proxy.routers) {
        const plsn = r.primary.monitor?.lsn ?? null;
        const pm = r.primary.monitor;
        rows.push([
          pool.database,
          'primary',
          `${pool.target.host}:${pool.target.port}`,
          pm?.healthy ?? null,
          pm?.lsn !== null && pm?.lsn !== undefined ? formatLsn(pm.lsn) : null,
          0,
          null,
          null,
          pm?.lastError ?? null,
        ]);
        const usable = new Set(r.usable());
        for (const x of r.replicas) {
          const m = x.monitor;
          rows.push([
            pool.database,
            m.inRecovery === false ? 'primary?' : 'replica',
            `${x.pool.target.host}:${x.pool.target.port}`,
            usable.has(x),
            m.lsn !== null ? formatLsn(m.lsn) : null,
            plsn !== null && m.lsn !== null ? String(plsn - m.lsn) : null,
            x.readsServed,
            x.outstanding,
            m.lastError,
          ]);
        }
      }
      return {
        columns: [
          'database',
          'role',
          'addr',
          'in_read_set',
          'lsn',
          'lag_bytes',
          'reads_served',
          'outstanding',
          'last_error',
        ],
        rows,
      };
    }
    case 'LISTS':
      return { columns: ['list', 'items'], rows: listRows(proxy) };
    case 'MEM':
      return { columns: ['name', 'size', 'used', 'free', 'memtotal'], rows: memRows(proxy) };
    case 'WORKERS': {
      // One row per process of the proxy (worker 0: a proxy of one process); with workers, the
      // console's worker asks every other one (admin-merge.ts marks which one answers).
      const n = proxy.cancelCounts;
      return {
        columns: [
          'worker',
          'pid',
          'clients',
          'server_connections',
          'cancels_local',
          'cancels_remote',
          'cancels_forwarded',
          'cancels_unmatched',
          'answering',
        ],
        rows: [
          [
            cancelInstance(),
            process.pid,
            proxy.clients.size,
            serverCount(proxy),
            n.local,
            n.remote,
            n.forwarded,
            n.unmatched,
            true,
          ],
        ],
      };
    }
    case 'USERS':
      // PgBouncer's columns: a user's own settings (empty: the database's or the default applies).
      return {
        columns: ['name', 'pool_size', 'pool_mode', 'max_user_connections', 'current_connections'],
        rows: [...new Set([...proxy.credentials.users(), ...proxy.users.keys()])].sort().map((u) => {
          const s = proxy.users.get(u);
          let current = 0;
          for (const p of proxy.pools.values()) if (p.target.user === u) current += p.total;
          return [u, s?.poolSize ?? null, s?.poolMode ?? null, s?.maxUserConnections ?? 0, current];
        }),
      };
    case 'CONFIG': {
      const c = proxy.settings as unknown as Record<string, unknown>;
      return {
        columns: ['key', 'value', 'changeable'],
        rows: Object.entries(c).map(([k, v]) => [
          k,
          k === 'databases'
            ? JSON.stringify(maskDatabases(v))
            : typeof v === 'object' && v !== null
              ? JSON.stringify(v)
              : String(v),
          RELOADABLE.has(k) ? 'yes' : 'no',
        ]),
      };
    }
    default:
      return null;
  }
}

function maskDatabases(v: unknown): unknown {
  const out: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(v as Record<string, Record<string, unknown>>)) {
    out[k] = { ...d, ...(d.password !== undefined ? { password: '********' } : {}) };
  }
  return out;
}

export function rowDescription(columns: string[]): Buffer {
  return encodeBackendMessage({
    name: 'RowDescription',
    fields: columns.map((name) => ({
      name,
      tableOid: 0,
      columnAttr: 0,
      typeOid: 25,
      typeSize: -1,
      typeModifier: -1,
      format: 0,
    })),
  });
}

export function dataRow(cells: Cell[]): Buffer {
  return encodeBackendMessage({
    name: 'DataRow',
    values: cells.map((c) =>
      c === null ? null : Buffer.from(typeof c === 'boolean' ? (c ? 't' : 'f') : String(c), 'utf8'),
    ),
  });
}
