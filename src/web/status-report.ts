/**
 * The status object, built in one place: `pgscale status --json` prints it and the controller's
 * GET /status serves it, so the two can never drift apart. Its shape is documented in
 * docs/status.md; it holds no secret (NodeStatus carries none, and the controller entry is only
 * a pid, an address and a time).
 */
import type { Cluster } from '../cluster/cluster.js';
import type { NodeStatus } from '../cluster/status.js';

/** What `<data_dir>/controller.json` says about the running controller. */
export interface ControllerInfo {
  pid: number;
  http: { host: string; port: number };
  started_at: string;
}

export interface StatusReport {
  cluster: string;
  postgres: { version: string; bin_dir: string; source: string };
  /** The controller running this cluster on this host, or null when there is none. */
  controller: ControllerInfo | null;
  nodes: NodeStatus[];
}

export async function statusReport(
  cluster: Cluster,
  controller: ControllerInfo | null,
): Promise<StatusReport> {
  const nodes = await cluster.status();
  return {
    cluster: cluster.config.cluster.name,
    postgres: { version: cluster.bins.version, bin_dir: cluster.bins.dir, source: cluster.bins.source },
    controller,
    nodes,
  };
}
