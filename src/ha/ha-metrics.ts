/**
 * High availability's Prometheus metrics, read at scrape time from the decide loop's state:
 * which node holds each group's leader key (pgscale_ha_leader, 0/1 per node, a stable label set
 * like Patroni's patroni_primary), the epoch, whether HA is paused and the store reachable, and
 * counters of failovers and switchovers with the time of the last failover. The counters count
 * what this controller did since it started (a counter reset for Prometheus when it restarts);
 * the last failover's time is read back from the history when it starts.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

export interface HaGroupMetrics {
  group: number;
  nodes: readonly string[];
  leader: string | null;
  epoch: number;
  failovers: number;
  switchovers: number;
  /** Unix time (ms) of the last failover's promotion, or null when none is known. */
  lastFailoverAt: number | null;
}

export interface HaMetricsSnapshot {
  paused: boolean;
  storeReachable: boolean;
  cycles: number;
  groups: readonly HaGroupMetrics[];
}

export function registerHaMetrics(registry: Registry, snapshot: () => HaMetricsSnapshot | null): void {
  const registers = [registry];
  // prom-client calls collect() with the metric as `this`; the snapshot is taken once per metric.
  new Gauge({
    name: 'pgscale_ha_leader',
    help: "Whether the node holds its group's leader key (1) or not (0).",
    labelNames: ['group', 'node'],
    registers,
    collect() {
      this.reset();
      for (const s of snapshot()?.groups ?? []) {
        for (const node of s.nodes) this.set({ group: String(s.group), node }, s.leader === node ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'pgscale_ha_epoch',
    help: "The group's leader epoch: one more at every failover or switchover.",
    labelNames: ['group'],
    registers,
    collect() {
      this.reset();
      for (const s of snapshot()?.groups ?? []) this.set({ group: String(s.group) }, s.epoch);
    },
  });
  new Gauge({
    name: 'pgscale_ha_paused',
    help: 'Whether automatic failover is paused (1) or not (0).',
    registers,
    collect() {
      const s = snapshot();
      if (s) this.set(s.paused ? 1 : 0);
      else this.reset();
    },
  });
  new Gauge({
    name: 'pgscale_ha_store_reachable',
    help: 'Whether the state store answered at the last cycle (1) or not (0).',
    registers,
    collect() {
      const s = snapshot();
      if (s) this.set(s.storeReachable ? 1 : 0);
      else this.reset();
    },
  });
  new Counter({
    name: 'pgscale_ha_cycles_total',
    help: 'Cycles of the decide loop run by this controller.',
    registers,
    collect() {
      this.reset();
      const s = snapshot();
      if (s) this.inc(s.cycles);
    },
  });
  new Counter({
    name: 'pgscale_ha_failovers_total',
    help: 'Failovers (a standby promoted in place of a failed or fenced primary) done by this controller.',
    labelNames: ['group'],
    registers,
    collect() {
      this.reset();
      for (const s of snapshot()?.groups ?? []) this.inc({ group: String(s.group) }, s.failovers);
    },
  });
  new Counter({
    name: 'pgscale_ha_switchovers_total',
    help: 'Planned switchovers done by this controller.',
    labelNames: ['group'],
    registers,
    collect() {
      this.reset();
      for (const s of snapshot()?.groups ?? []) this.inc({ group: String(s.group) }, s.switchovers);
    },
  });
  new Gauge({
    name: 'pgscale_ha_last_failover_timestamp_seconds',
    help: "Unix time of the group's last failover (its promotion); absent when there has been none.",
    labelNames: ['group'],
    registers,
    collect() {
      this.reset();
      for (const s of snapshot()?.groups ?? []) {
        if (s.lastFailoverAt !== null) this.set({ group: String(s.group) }, s.lastFailoverAt / 1000);
      }
    },
  });
}
