/**
 * The proxy's Prometheus metrics: gauges for clients by state, server connections, queues and the
 * read set; counters (`*_total`, as Prometheus' naming rules and pgbouncer_exporter have them)
 * for transactions, queries, bytes and reads per replica. Every value is read from the proxy at
 * scrape time; a counter starts again from 0 when the proxy restarts, which Prometheus' rate()
 * handles as a counter reset. Registered by the controller's proxy service (inside `pgscale up`)
 * and by the standalone `pgscale proxy --http`; `current` gives the running proxy, or null
 * between restarts.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { ProxyServer } from '../proxy/proxy-server.js';
import { Session } from '../proxy/session.js';
import { lsnDiff } from '../protocol/lsn.js';

export function registerProxyMetrics(registry: Registry, current: () => ProxyServer | null): void {
  // prom-client calls collect() with the metric as `this`; the proxy is reached through this.
  const service = {
    get proxy() {
      return current();
    },
  };
  new Gauge({
    name: 'pgscale_proxy_clients',
    help: 'Client connections to the proxy, by state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      const p = service.proxy;
      if (!p) return;
      const counts: Record<string, number> = { login: 0, active: 0, idle: 0, waiting: 0, admin: 0 };
      for (const c of p.clients) {
        const s = c.session;
        const state = c.phase !== 'ready' ? 'login' : s instanceof Session ? s.state : 'admin';
        counts[state] = (counts[state] ?? 0) + 1;
      }
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'pgscale_proxy_server_connections',
    help: 'Server connections held by the proxy pools, by database, user and state.',
    labelNames: ['database', 'user', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const pool of service.proxy?.pools.values() ?? []) {
        const l = { database: pool.database, user: pool.target.user };
        this.set({ ...l, state: 'active' }, pool.active.size);
        this.set({ ...l, state: 'idle' }, pool.idle.length);
        this.set({ ...l, state: 'tested' }, pool.tested.size);
      }
    },
  });
  new Gauge({
    name: 'pgscale_proxy_clients_waiting',
    help: 'Clients queued for a server connection, by database and user.',
    labelNames: ['database', 'user'],
    registers: [registry],
    collect() {
      this.reset();
      for (const pool of service.proxy?.pools.values() ?? [])
        this.set({ database: pool.database, user: pool.target.user }, pool.waiting);
    },
  });
  new Gauge({
    name: 'pgscale_proxy_node_in_read_set',
    help: 'Whether a replica is in the read set (1) or not (0), by database and node.',
    labelNames: ['database', 'user', 'node'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [pool, r] of service.proxy?.routers ?? []) {
        const usable = new Set(r.usable());
        for (const x of r.replicas)
          this.set({ database: pool.database, user: pool.target.user, node: x.name }, usable.has(x) ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'pgscale_proxy_node_lag_bytes',
    help: "A replica's replay lag behind the primary's WAL position, in bytes, as the proxy last saw it.",
    labelNames: ['database', 'user', 'node'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [pool, r] of service.proxy?.routers ?? []) {
        const p = r.primary.monitor?.lsn ?? null;
        for (const x of r.replicas) {
          if (p !== null && x.monitor.lsn !== null)
            this.set(
              { database: pool.database, user: pool.target.user, node: x.name },
              Number(lsnDiff(p, x.monitor.lsn)),
            );
        }
      }
    },
  });
  new Counter({
    name: 'pgscale_proxy_node_reads_total',
    help: 'Read transactions the proxy sent to each replica.',
    labelNames: ['database', 'user', 'node'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [pool, r] of service.proxy?.routers ?? []) {
        for (const x of r.replicas)
          this.inc({ database: pool.database, user: pool.target.user, node: x.name }, x.readsServed);
      }
    },
  });
  new Counter({
    name: 'pgscale_proxy_cancel_requests_total',
    help: "CancelRequests from clients: local (this process's client, cancelled), remote (sent on by another worker, cancelled), forwarded (sent to another worker), unmatched (no such client or a wrong key: nothing done).",
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      const p = service.proxy;
      if (!p) return;
      const n = p.cancelCounts;
      for (const result of ['local', 'remote', 'forwarded', 'unmatched'] as const)
        this.inc({ result }, n[result]);
    },
  });
  // A true counter: it follows the running proxy's own totals, and a new proxy (restart) starts
  // from zero, so only the growth since the last scrape is added.
  const seen = new Map<string, number>();
  let seenProxy: ProxyServer | null = null;
  new Counter({
    name: 'pgscale_proxy_login_failures_total',
    help: 'Failed client logins: authentication (wrong password or unknown user), refused (database or console not allowed), throttled (failed-login back-off).',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const p = service.proxy;
      if (!p) return;
      if (p !== seenProxy) {
        seenProxy = p;
        seen.clear();
      }
      for (const [kind, n] of Object.entries(p.loginFailures)) {
        const grew = n - (seen.get(kind) ?? 0);
        if (grew > 0) this.inc({ kind }, grew);
        else if (!seen.has(kind)) this.inc({ kind }, 0);
        seen.set(kind, n);
      }
    },
  });
  // The budget for large client messages (proxy.max_buffered_bytes): used, limit, clients waiting.
  for (const [name, help, value] of [
    [
      'pgscale_proxy_message_buffer_bytes',
      'Bytes reserved now for client messages over 1 MiB.',
      (p: ProxyServer) => p.messageBudget.used,
    ],
    [
      'pgscale_proxy_message_buffer_limit_bytes',
      'proxy.max_buffered_bytes: the most reserved for client messages over 1 MiB.',
      (p: ProxyServer) => p.messageBudget.limit,
    ],
    [
      'pgscale_proxy_message_buffer_waiting_clients',
      'Clients not read until their large message fits in proxy.max_buffered_bytes.',
      (p: ProxyServer) => p.messageBudget.waiting,
    ],
  ] as const) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const p = service.proxy;
        if (p) this.set(value(p));
      },
    });
  }
  // Counts as they are; times in seconds, as pgbouncer_exporter exports PgBouncer's microsecond
  // totals. A counter has no set(): each scrape starts from zero and adds the proxy's running total.
  for (const [name, key, scale, help] of [
    ['pgscale_proxy_transactions_total', 'xacts', 1, 'Transactions run through the proxy.'],
    [
      'pgscale_proxy_queries_total',
      'queries',
      1,
      'Statements run through the proxy (each Query message and Execute).',
    ],
    ['pgscale_proxy_received_bytes_total', 'bytesReceived', 1, 'Bytes sent by clients to servers.'],
    ['pgscale_proxy_sent_bytes_total', 'bytesSent', 1, 'Bytes sent by servers to clients.'],
    ['pgscale_proxy_client_waits_total', 'waits', 1, 'Times a client waited for a server connection.'],
    [
      'pgscale_proxy_transaction_duration_seconds_total',
      'xactTimeUs',
      1e-6,
      'Time spent in transactions on servers, summed over transactions.',
    ],
    [
      'pgscale_proxy_query_duration_seconds_total',
      'queryTimeUs',
      1e-6,
      'Time statements took through the proxy, arrival to last reply, summed.',
    ],
    [
      'pgscale_proxy_client_wait_seconds_total',
      'waitTimeUs',
      1e-6,
      'Time clients spent waiting for a server connection, summed.',
    ],
  ] as const) {
    new Counter({
      name,
      help,
      labelNames: ['database', 'user'],
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of service.proxy?.pools.values() ?? [])
          this.inc({ database: pool.database, user: pool.target.user }, pool.stats[key] * scale);
      },
    });
  }
}
