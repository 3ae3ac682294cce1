/**
 * The topology the proxy routes by, as HA sees it: per group the primary (the leader, while its
 * latest probe shows a healthy primary and no hold is on) and the replicas (streaming standbys of
 * that leader that need no rejoin). Published to the TopologyView only when it changed; the epoch
 * the proxy sees moves at every change of a primary, "none" included, and each group carries its
 * own epoch, which moves only with that group's primary. A hold (failover or
 * switchover under way) publishes the group with no primary, so the proxy holds its new
 * transactions, until a promotion publishes the new one or a healthy leader is seen again.
 */
import type { Cluster } from '../cluster/cluster.js';
import type { NodeRef } from '../config/load.js';
import type { Endpoint, Topology, TopologyView } from '../topology/topology.js';
import { ErrorCodes } from '../errors.js';
import type { ProbeResult } from './probe.js';
import { HaError, sameHost } from './group-state.js';
import type { NodeFacts } from './node-ops.js';

/** What the publisher reads of the HA service's state. */
export interface PublisherSource {
  readonly groupCount: number;
  /** The group's leader as last read or won, if any. */
  leaderOf(group: number): string | null;
  /** The node's latest probe (null: down or never probed). */
  lastProbe(node: string): ProbeResult | null;
  /** A switchover or failover of the group is queued or running. */
  requestPending(group: number): boolean;
  /** The node's data-directory facts (default: read locally through the Cluster). */
  facts?(n: NodeRef): NodeFacts | null;
}

export class TopologyPublisher {
  private readonly held = new Set<number>();
  private published = '';
  private epoch = 0;
  /** Each group's own epoch: one more at every change of that group's primary. */
  private readonly groupEpochs: number[] = [];

  constructor(
    private readonly view: TopologyView,
    private readonly cluster: Cluster,
    private readonly src: PublisherSource,
  ) {}

  /** Publishes the group without a primary: the proxy holds its new transactions. */
  hold(group: number): void {
    this.held.add(group);
    this.publish();
  }

  /** Publishes `primary` as the group's primary now (just promoted, before any probe says so). */
  publishNow(group: number, primary: NodeRef): void {
    this.held.delete(group);
    this.publish(new Map([[group, primary.name]]));
  }

  /** The topology from the latest probes; published when it changed. */
  publish(forced?: Map<number, string>): void {
    // A removed group (remove-group, always the last) is forgotten: one added again starts afresh.
    if (this.groupEpochs.length > this.src.groupCount) this.groupEpochs.length = this.src.groupCount;
    for (const group of this.held) if (group >= this.src.groupCount) this.held.delete(group);
    const groups = Array.from({ length: this.src.groupCount }, (_, group) => {
      const forcedPrimary = forced?.get(group);
      const leaderName = forcedPrimary ?? this.src.leaderOf(group);
      const leaderOk =
        forcedPrimary !== undefined ||
        (leaderName !== null && !this.held.has(group) && this.healthyPrimary(leaderName));
      const primary: Endpoint | null = leaderOk && leaderName ? endpoint(this.node(leaderName)) : null;
      const replicas = this.cluster
        .nodes()
        .filter((n) => n.group === group && n.name !== leaderName)
        .filter((n) => {
          const last = this.src.lastProbe(n.name);
          return (
            last?.ok === true &&
            last.inRecovery === true &&
            last.streaming &&
            this.followsLeader(n, leaderName)
          );
        })
        .map(endpoint);
      const before = this.view.current().groups[group]?.primary?.name ?? null;
      if ((primary?.name ?? null) !== before || this.groupEpochs[group] === undefined) {
        this.groupEpochs[group] = (this.groupEpochs[group] ?? 0) + 1;
      }
      return { primary, replicas, epoch: this.groupEpochs[group] };
    });
    // Release a hold once a healthy leader is seen again.
    for (const group of [...this.held]) {
      const leader = this.src.leaderOf(group);
      if (forced?.has(group)) this.held.delete(group);
      else if (leader !== null && this.healthyPrimary(leader) && !this.src.requestPending(group)) {
        this.held.delete(group);
      }
    }
    const key = JSON.stringify(groups);
    if (key === this.published) return;
    const primaries = (t: Pick<Topology, 'groups'>) =>
      JSON.stringify(t.groups.map((s) => s.primary?.name ?? null));
    // The proxy's epoch moves at every change of a primary (including "none" during a hold).
    if (primaries({ groups }) !== primaries(this.view.current())) this.epoch++;
    this.published = key;
    this.view.publish({ epoch: this.epoch, groups });
  }

  /** Needs no rejoin and streams from the leader (its primary_conninfo names the leader). */
  private followsLeader(n: NodeRef, leaderName: string | null): boolean {
    const f = this.src.facts
      ? this.src.facts(n)
      : { needsRejoin: this.cluster.needsRejoin(n), upstream: this.cluster.upstreamOf(n) };
    if (!f || f.needsRejoin || leaderName === null) return false;
    const leader = this.node(leaderName);
    return f.upstream?.port === leader.port && sameHost(f.upstream.host, leader.host);
  }

  private healthyPrimary(node: string): boolean {
    const last = this.src.lastProbe(node);
    return last?.ok === true && last.inRecovery === false;
  }

  private node(name: string): NodeRef {
    const n = this.cluster.nodes().find((x) => x.name === name);
    if (!n) throw new HaError(ErrorCodes.NODE_NOT_FOUND, `no node named ${name}`);
    return n;
  }
}

function endpoint(n: NodeRef): Endpoint {
  return { name: n.name, host: n.host, port: n.port };
}
