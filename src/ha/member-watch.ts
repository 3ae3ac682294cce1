/**
 * What HA knows of each node between cycles: a prober (one authenticated connection, for probes
 * and the queries of a promotion) and a tracker (since when it has been down, unreachable, or a
 * standby of the leader not streaming), for the cluster's node list as it is now (add-replica and
 * remove-replica change it while the controller runs). probeAll() probes every running node at
 * once; members() turns the probes into the MemberView list of a group's snapshot.
 */
import { performance } from 'node:perf_hooks';
import type { Cluster } from '../cluster/cluster.js';
import type { NodeOps } from './node-ops.js';
import type { MemberView } from './decide.js';
import type { ProbeResult } from './probe.js';
import { NodeProber } from './probe.js';
import { sameHost } from './group-state.js';

interface Tracker {
  downSince: number | null;
  /**
   * Several hosts, a node that does not report: the last direct probe's finding (writable
   * primary or not) and when it was started; `checking` while one runs. Direct probes run in
   * the background, so a black-holed host never slows the decide loop down.
   */
  direct: { startedAt: number; writable: boolean } | null;
  checking: boolean;
  unreachableSince: number | null;
  notStreamingSince: number | null;
  last: ProbeResult | null;
}

export type Probes = Map<string, ProbeResult | null>;

export class MemberWatch {
  private readonly probers = new Map<string, NodeProber>();
  private readonly trackers = new Map<string, Tracker>();

  /** `probeMs`: how long a probe may take (a busy server is slow, not dead). */
  constructor(
    private readonly cluster: Cluster,
    private readonly ops: NodeOps,
    private readonly probeMs: number,
  ) {
    this.sync();
  }

  /** A prober and a tracker per node of the cluster as its node list is now. */
  sync(): void {
    const nodes = this.cluster.nodes();
    const names = new Set(nodes.map((n) => n.name));
    for (const [name, prober] of this.probers) {
      if (names.has(name)) continue;
      prober.close();
      this.probers.delete(name);
      this.trackers.delete(name);
    }
    for (const n of nodes) {
      if (this.probers.has(n.name)) continue;
      this.probers.set(n.name, new NodeProber(() => this.cluster.target(n), this.probeMs));
      this.trackers.set(n.name, {
        downSince: null,
        direct: null,
        checking: false,
        unreachableSince: null,
        notStreamingSince: null,
        last: null,
      });
    }
  }

  prober(node: string): NodeProber {
    return this.probers.get(node)!;
  }

  /** The node's latest probe (null: down, or not probed yet). */
  lastProbe(node: string): ProbeResult | null {
    return this.trackers.get(node)?.last ?? null;
  }

  /** Until the next probe, what a promotion taught us: the node is a healthy primary now. */
  notePromoted(node: string): void {
    const tr = this.trackers.get(node)!;
    if (tr.last) tr.last = { ...tr.last, inRecovery: false, ok: true };
  }

  /** The node was rejoined: its not-streaming time starts afresh. */
  noteRejoined(node: string): void {
    this.trackers.get(node)!.notStreamingSince = null;
  }

  close(): void {
    for (const p of this.probers.values()) p.close();
  }

  /** Probes every running node at once; null for the ones not running. */
  async probeAll(): Promise<Probes> {
    const out: Probes = new Map();
    const t = performance.now();
    await Promise.all(
      this.cluster.nodes().map(async (n) => {
        const tr = this.trackers.get(n.name)!;
        const facts = this.ops.facts(n);
        if (facts === null) {
          // Its host does not report (several hosts): dead, cut off, or only its agent is gone.
          tr.downSince ??= t;
          tr.unreachableSince = null;
          tr.last = null;
          out.set(n.name, null);
          this.checkDirectly(n.name, t);
          return;
        }
        tr.direct = null;
        const running = facts.running;
        if (!running) {
          this.probers.get(n.name)!.drop();
          tr.downSince ??= t;
          tr.unreachableSince = null;
          tr.last = null;
          out.set(n.name, null);
          return;
        }
        tr.downSince = null;
        const r = await this.probers.get(n.name)!.probe();
        tr.last = r;
        if (r.ok) tr.unreachableSince = null;
        else tr.unreachableSince ??= t;
        out.set(n.name, r);
      }),
    );
    return out;
  }

  /**
   * Probes a node that does not report from here, in the background: does its PostgreSQL still
   * answer as a writable primary? (decide.ts: answersAsPrimary.)
   */
  private checkDirectly(node: string, now: number): void {
    const tr = this.trackers.get(node)!;
    if (tr.checking) return;
    tr.checking = true;
    const prober = this.probers.get(node)!;
    void prober
      .probe()
      .then((r) => {
        // Only while it still does not report (and is still a node of the cluster).
        if (this.trackers.get(node) === tr && tr.downSince !== null)
          tr.direct = { startedAt: now, writable: r.ok && r.inRecovery === false };
      })
      .finally(() => {
        tr.checking = false;
      });
  }

  /**
   * The group's members as decide() sees them, from `probes`; `leader`: the group's leader (for
   * how long its standbys have not been streaming); `busy`: nodes with a long action running.
   */
  members(
    group: number,
    probes: Probes,
    leader: string | null,
    busy: (node: string) => boolean,
  ): MemberView[] {
    const t = performance.now();
    const nodes = this.cluster.nodes().filter((n) => n.group === group);
    return nodes.map((n) => {
      const facts = this.ops.facts(n);
      const tr = this.trackers.get(n.name)!;
      const p = probes.get(n.name) ?? null;
      const upstreamAddr = facts?.upstream ?? null;
      const upstream =
        upstreamAddr === null
          ? null
          : (nodes.find((x) => x.port === upstreamAddr.port && sameHost(x.host, upstreamAddr.host))?.name ??
            `${upstreamAddr.host}:${upstreamAddr.port}`);
      const m: MemberView = {
        name: n.name,
        priority: n.priority,
        nofailover: n.nofailover,
        reported: facts !== null,
        ...(facts === null
          ? {
              answersAsPrimary:
                tr.direct !== null && tr.downSince !== null && tr.direct.startedAt >= tr.downSince
                  ? tr.direct.writable
                  : null,
            }
          : {}),
        provisioned: facts?.provisioned ?? false,
        standbyDir: facts?.standbyDir ?? false,
        needsRejoin: facts?.needsRejoin ?? false,
        selfStopped: facts?.selfStopped ?? false,
        running: p !== null,
        reachable: p?.ok ?? false,
        inRecovery: p?.inRecovery ?? null,
        currentLsn: p?.currentLsn ?? null,
        receiveLsn: p?.receiveLsn ?? null,
        replayLsn: p?.replayLsn ?? null,
        streaming: p?.streaming ?? false,
        upstream,
        downForMs: tr.downSince === null ? 0 : t - tr.downSince,
        unreachableForMs: tr.unreachableSince === null ? 0 : t - tr.unreachableSince,
        notStreamingForMs: 0,
        busy: busy(n.name),
      };
      // How long a running standby of the leader has not been streaming.
      const standbyOfLeader =
        leader !== null && m.reachable && m.inRecovery === true && m.upstream === leader;
      if (standbyOfLeader && !m.streaming) tr.notStreamingSince ??= t;
      else tr.notStreamingSince = null;
      return { ...m, notStreamingForMs: tr.notStreamingSince === null ? 0 : t - tr.notStreamingSince };
    });
  }
}
