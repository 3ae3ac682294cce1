/**
 * What high availability does to a node and knows of its data directory, behind one interface:
 * on one host every node is local (LocalNodeOps: the Cluster's own methods and files); with
 * several hosts (`pgscale agent`) a node on another host is reached through its host's agent
 * (agent-rpc.ts), and its facts come from that agent's report in the state store. The decide
 * loop, failover and switchover run the same code either way.
 */
import type { Cluster } from '../cluster/cluster.js';
import { isProvisioned, isStandbyDir, runningPid } from '../cluster/instance.js';
import type { NodeRef } from '../config/load.js';

/** What only the node's own host can see: its data directory and its postmaster. */
export interface NodeFacts {
  /** A data directory exists. */
  readonly provisioned: boolean;
  /** The data directory holds standby.signal. */
  readonly standbyDir: boolean;
  /** Fenced as a former primary: must rejoin before it may run. */
  readonly needsRejoin: boolean;
  /** Its postmaster is alive. */
  readonly running: boolean;
  /** Where its primary_conninfo points (standbys), or null. */
  readonly upstream: { readonly host: string; readonly port: number } | null;
}

export interface NodeOps {
  /** The node's facts; null when nobody can tell (its host's agent is gone: dead or cut off). */
  facts(n: NodeRef): NodeFacts | null;
  /**
   * Makes sure the node accepts no writes: every process killed and the data directory marked
   * for rejoin. Resolves with how many processes were killed (0 when its agent was gone: an agent
   * that cannot renew its session stops its primaries before the session ends).
   */
  fence(n: NodeRef): Promise<number>;
  stopNode(n: NodeRef, mode: 'fast' | 'immediate'): Promise<void>;
  startPrimary(n: NodeRef): Promise<void>;
  startStandby(n: NodeRef, primary: NodeRef): Promise<void>;
  rejoin(n: NodeRef, primary: NodeRef): Promise<'pg_rewind' | 'clone'>;
  repoint(n: NodeRef, primary: NodeRef): Promise<void>;
  markForRejoin(n: NodeRef): Promise<void>;
  /** The primary's settings for its standbys (synchronous names), written; the caller reloads. */
  writePrimaryConf(n: NodeRef): Promise<void>;
}

/** Every node on this host: the Cluster's methods, its files read directly. */
export class LocalNodeOps implements NodeOps {
  constructor(private readonly cluster: Cluster) {}

  facts(n: NodeRef): NodeFacts {
    const { pgdata } = this.cluster.paths(n.name);
    const provisioned = isProvisioned(pgdata);
    return {
      provisioned,
      standbyDir: provisioned && isStandbyDir(pgdata),
      needsRejoin: this.cluster.needsRejoin(n),
      running: provisioned && runningPid(pgdata) !== null,
      upstream: this.cluster.upstreamOf(n),
    };
  }

  fence(n: NodeRef): Promise<number> {
    return Promise.resolve(this.cluster.fence(n));
  }

  stopNode(n: NodeRef, mode: 'fast' | 'immediate'): Promise<void> {
    return this.cluster.stopNode(n, mode);
  }

  startPrimary(n: NodeRef): Promise<void> {
    return this.cluster.startPrimary(n);
  }

  startStandby(n: NodeRef, primary: NodeRef): Promise<void> {
    return this.cluster.startStandby(n, primary);
  }

  rejoin(n: NodeRef, primary: NodeRef): Promise<'pg_rewind' | 'clone'> {
    return this.cluster.rejoin(n, primary);
  }

  repoint(n: NodeRef, primary: NodeRef): Promise<void> {
    return this.cluster.repoint(n, primary);
  }

  markForRejoin(n: NodeRef): Promise<void> {
    this.cluster.markForRejoin(n);
    return Promise.resolve();
  }

  writePrimaryConf(n: NodeRef): Promise<void> {
    this.cluster.writePrimaryConf(n);
    return Promise.resolve();
  }
}

/** A node being created or cloned: not there yet (no facts of a half-made directory), and left alone. */
export class ProvisioningAware implements NodeOps {
  constructor(
    private readonly inner: NodeOps,
    private readonly provisioning: (n: NodeRef) => boolean,
  ) {}

  private check(n: NodeRef): void {
    if (this.provisioning(n)) throw new Error(`${n.name} is being provisioned`);
  }

  facts(n: NodeRef): NodeFacts | null {
    if (this.provisioning(n))
      return { provisioned: false, standbyDir: false, needsRejoin: false, running: false, upstream: null };
    return this.inner.facts(n);
  }
  async fence(n: NodeRef): Promise<number> {
    return this.inner.fence(n);
  }
  async stopNode(n: NodeRef, mode: 'fast' | 'immediate'): Promise<void> {
    this.check(n);
    return this.inner.stopNode(n, mode);
  }
  async startPrimary(n: NodeRef): Promise<void> {
    this.check(n);
    return this.inner.startPrimary(n);
  }
  async startStandby(n: NodeRef, primary: NodeRef): Promise<void> {
    this.check(n);
    return this.inner.startStandby(n, primary);
  }
  async rejoin(n: NodeRef, primary: NodeRef): Promise<'pg_rewind' | 'clone'> {
    this.check(n);
    return this.inner.rejoin(n, primary);
  }
  async repoint(n: NodeRef, primary: NodeRef): Promise<void> {
    this.check(n);
    return this.inner.repoint(n, primary);
  }
  async markForRejoin(n: NodeRef): Promise<void> {
    this.check(n);
    return this.inner.markForRejoin(n);
  }
  async writePrimaryConf(n: NodeRef): Promise<void> {
    return this.inner.writePrimaryConf(n);
  }
}
