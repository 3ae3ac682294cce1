/**
 * Nodes added to a cluster of several hosts while it runs (`pgscale add-replica --host`,
 * `pgscale add-group --hosts`): the CLI records each under `nodes/<name>` in etcd, so that no
 * file has to change on every host at once. Every agent, and the CLI's commands that read the
 * store, take them in beside the file's nodes (withAddedNodes); the agent of the node's host
 * provisions it — a standby cloned from its group's leader, or a new group's first primary — and
 * says how that goes under `provisioning/<name>`, which the CLI follows. A node the file names
 * too is the file's: once an operator has written it into pgscale.yaml on every host, the record
 * is ignored.
 */
import { allNodes, withAddedNodes } from '../config/load.js';
import type { LoadedConfig } from '../config/load.js';
import type { NodeConfig } from '../config/schema.js';
import type { StateStore } from './store.js';

export const NODE_KEYS = {
  nodes: 'nodes/',
  node: (name: string) => `nodes/${name}`,
  provisioning: (name: string) => `provisioning/${name}`,
};

/** What `nodes/<name>` holds. */
export interface StoredNode {
  readonly group: number;
  readonly node: NodeConfig;
  readonly added_at: string;
  /** Its place among the nodes added at once (add-group: 0 is the new group's primary). */
  readonly position: number;
}

/** What the agent of a node's host says of its provisioning (`provisioning/<name>`). */
export interface ProvisioningReport {
  readonly host: string;
  readonly state: 'provisioning' | 'done' | 'failed' | 'removed';
  readonly error?: string;
  readonly at: string;
}

/** The recorded nodes, in the order they join their groups. */
export async function readStoredNodes(store: StateStore): Promise<StoredNode[]> {
  const out: StoredNode[] = [];
  for (const kv of await store.list(NODE_KEYS.nodes)) {
    try {
      out.push(JSON.parse(kv.value) as StoredNode);
    } catch {
      // a record this version cannot read counts as none
    }
  }
  return out.sort(
    (a, b) =>
      a.group - b.group ||
      a.added_at.localeCompare(b.added_at) ||
      a.position - b.position ||
      a.node.name.localeCompare(b.node.name),
  );
}

/** `fileLoaded` (the config as its file says) with the recorded nodes the file does not name. */
export function mergeStoredNodes(fileLoaded: LoadedConfig, stored: readonly StoredNode[]): LoadedConfig {
  const inFile = new Set(allNodes(fileLoaded.config).map((n) => n.name));
  const extra = stored.filter((s) => !inFile.has(s.node.name));
  return extra.length === 0 ? fileLoaded : withAddedNodes(fileLoaded, extra);
}
