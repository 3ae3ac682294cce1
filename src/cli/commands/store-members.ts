/**
 * `pgscale add-replica --host H` and `pgscale add-group --hosts H1,H2…` for a cluster of several
 * hosts (ha.store: etcd, run by `pgscale agent`), from any machine that reaches etcd. The new
 * nodes are recorded in the store (src/ha/store-nodes.ts); the agent of each node's host takes
 * them in and provisions them (a standby cloned from its group's leader with pg_basebackup over
 * the network; a new group's primary created with initdb, roles and databases), the decider
 * supervises them, and the command waits until each runs in its role and the topology every proxy
 * follows has it (a standby in its group's read set, a new group's primary as its primary).
 * Nothing is recorded unless every named host has an agent; a failure or the timeout takes the
 * records out again, and the agents delete what they made. `remove-replica` of such a node takes
 * its record out and waits for its agent to have removed it.
 */
import { withAddedNodes } from '../../config/load.js';
import type { NodeRef } from '../../config/load.js';
import { nodeSchema } from '../../config/schema.js';
import { nodeNameFor } from '../../config/template.js';
import { ClusterError, ErrorCodes, UsageError } from '../../errors.js';
import type { Cluster } from '../../cluster/cluster.js';
import { AGENT_KEYS } from '../../ha/agent-rpc.js';
import { HA_KEYS } from '../../ha/leader-lease.js';
import type { NodeFacts } from '../../ha/node-ops.js';
import { storePrefix } from '../../ha/open-store.js';
import { NODE_KEYS } from '../../ha/store-nodes.js';
import type { ProvisioningReport, StoredNode } from '../../ha/store-nodes.js';
import { TOPOLOGY_KEY } from '../../ha/store-topology.js';
import type { StateStore } from '../../ha/store.js';
import type { GroupTopology } from '../../topology/topology.js';
import { intOption } from '../args.js';
import { out, progress } from '../context.js';
import { takeInStoredNodes, withStore } from './ha.js';

/** An option as parse() gives it. */
type Opt = string | boolean | undefined;

/** How long the commands wait by default for the agents to provision the new nodes. */
export const STORE_ADD_WAIT_S = 600;

function requireEtcd(cluster: Cluster, option: string): void {
  if (cluster.config.ha.store !== 'etcd')
    throw new UsageError(
      `${option} adds nodes to a cluster of several hosts (ha.store: etcd, run by \`pgscale agent\`); ${cluster.loaded.file} has ha.store: ${cluster.config.ha.store}`,
    );
}

/** Refuses, before anything is written, a host that has no agent in the store. */
async function requireAgents(store: StateStore, hosts: readonly string[]): Promise<void> {
  const present = (await store.list(AGENT_KEYS.agents)).map((kv) => kv.key.slice(AGENT_KEYS.agents.length));
  const missing = [...new Set(hosts)].filter((h) => !present.includes(h));
  if (missing.length > 0)
    throw new ClusterError(
      ErrorCodes.USAGE,
      `no agent runs on ${missing.map((h) => `host ${h}`).join(', ')} (agents: ${present.join(', ') || 'none'}): ` +
        `start \`pgscale agent -c FILE --host ${missing[0]} --spare\` there first (a copy of secrets.json in its data directory)`,
    );
}

/** The first port from `from` that no node of `host` has. */
function freePortOn(nodes: readonly NodeRef[], host: string, from: number, taken: Set<string>): number {
  let port = from;
  while (nodes.some((n) => n.host === host && n.port === port) || taken.has(`${host}:${port}`)) port++;
  taken.add(`${host}:${port}`);
  return port;
}

function nodeRecord(group: number, name: string, host: string, port: number, position: number): StoredNode {
  const parsed = nodeSchema.safeParse({ name, host, port });
  if (!parsed.success)
    throw new UsageError(
      `node ${name} on ${host}:${port}: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
    );
  return { group, node: parsed.data, added_at: new Date().toISOString(), position };
}

export async function addReplicaOnHost(
  cluster: Cluster,
  o: { host: string; group?: Opt; name?: string; port?: Opt; waitS: number },
): Promise<number> {
  requireEtcd(cluster, '--host');
  return withStore(cluster, async (store) => {
    await takeInStoredNodes(cluster, store);
    const group = intOption('group', o.group, 0, cluster.config.groups.length - 1) ?? 0;
    const nodes = cluster.nodes();
    const mates = nodes.filter((n) => n.group === group);
    let name = o.name ?? '';
    for (let i = mates.length; !name; i++)
      if (!nodes.some((n) => n.name === nodeNameFor(group, i))) name = nodeNameFor(group, i);
    const port = intOption('port', o.port, 1, 65535) ?? freePortOn(nodes, o.host, mates[0]!.port, new Set());
    const rec = nodeRecord(group, name, o.host, port, 0);
    withAddedNodes(cluster.loaded, [rec]); // its name and port checked against the others
    await requireAgents(store, [o.host]);
    await record(store, [rec]);
    await follow(store, [rec], { newGroup: false, waitS: o.waitS });
    out(
      `added ${name} to group ${group} on host ${o.host}, port ${port} (recorded in etcd: ${storePrefix(cluster.loaded)}${NODE_KEYS.node(name)})`,
    );
    out(`the decider supervises ${name}: a streaming standby, in the read set of the proxies`);
    return 0;
  });
}

export async function addGroupOnHosts(
  cluster: Cluster,
  o: { hosts: string[]; port?: Opt; waitS: number },
): Promise<number> {
  requireEtcd(cluster, '--hosts');
  if (o.hosts.length === 0)
    throw new UsageError('--hosts names at least one host (its first is the primary)');
  return withStore(cluster, async (store) => {
    await takeInStoredNodes(cluster, store);
    const group = cluster.config.groups.length;
    const nodes = cluster.nodes();
    const explicit = intOption('port', o.port, 1, 65535);
    const taken = new Set<string>();
    const recs = o.hosts.map((host, i) => {
      const name = nodeNameFor(group, i);
      if (nodes.some((n) => n.name === name))
        throw new ClusterError(ErrorCodes.CONFIG_INVALID, `a node is already named ${name}`);
      return nodeRecord(group, name, host, freePortOn(nodes, host, explicit ?? nodes[0]!.port, taken), i);
    });
    withAddedNodes(cluster.loaded, recs);
    await requireAgents(store, o.hosts);
    await record(store, recs);
    await follow(store, recs, { newGroup: true, waitS: o.waitS });
    out(
      `added group ${group}: ${recs.map((r) => `${r.node.name} on ${r.node.host}:${r.node.port}`).join(', ')} (recorded in etcd under ${storePrefix(cluster.loaded)}${NODE_KEYS.nodes})`,
    );
    out(
      `the decider supervises group ${group}: ${recs[0]!.node.name} is its primary` +
        (recs.length > 1 ? ', its standbys stream, in the read set of the proxies' : ''),
    );
    return 0;
  });
}

/** Writes the records, each only if absent; on a clash the ones written go again. */
async function record(store: StateStore, recs: readonly StoredNode[]): Promise<void> {
  const done: StoredNode[] = [];
  for (const r of recs) {
    if ((await store.compareAndSet(NODE_KEYS.node(r.node.name), 0, JSON.stringify(r))) === null) {
      await unrecord(store, done);
      throw new ClusterError(ErrorCodes.CONFIG_INVALID, `a node named ${r.node.name} is being added already`);
    }
    done.push(r);
  }
}

async function unrecord(store: StateStore, recs: readonly StoredNode[]): Promise<void> {
  for (const r of recs) {
    const kv = await store.get(NODE_KEYS.node(r.node.name)).catch(() => null);
    if (kv) await store.compareAndDelete(kv.key, kv.revision).catch(() => false);
  }
}

/**
 * Waits until each new node runs in its role (member report) and the topology has it; gives up
 * (records out again) when an agent says its provisioning failed, when an agent goes, or at the
 * timeout.
 */
async function follow(
  store: StateStore,
  recs: readonly StoredNode[],
  o: { newGroup: boolean; waitS: number },
): Promise<void> {
  const { newGroup, waitS } = o;
  const deadline = Date.now() + waitS * 1000;
  const said = new Map<string, string>();
  const giveUp = async (why: string): Promise<never> => {
    await unrecord(store, recs);
    throw new ClusterError(
      ErrorCodes.TIMEOUT,
      `${why}; ${recs.map((r) => r.node.name).join(', ')} taken out of the state store again (the agents delete what they made)`,
    );
  };
  for (;;) {
    const [agents, topoKv] = await Promise.all([store.list(AGENT_KEYS.agents), store.get(TOPOLOGY_KEY)]);
    const topology = topoKv ? ((JSON.parse(topoKv.value) as { groups: GroupTopology[] }).groups ?? []) : [];
    let ready = true;
    for (const r of recs) {
      const { name, host } = r.node;
      if (!agents.some((kv) => kv.key === AGENT_KEYS.agent(host)))
        await giveUp(`the agent of ${host} is gone (its session in etcd ended)`);
      const repKv = await store.get(NODE_KEYS.provisioning(name));
      const rep = repKv ? (JSON.parse(repKv.value) as ProvisioningReport) : null;
      if (rep?.state === 'failed')
        await giveUp(`${host}: provisioning ${name} failed: ${rep.error ?? 'no reason given'}`);
      if (rep && said.get(name) !== rep.state) {
        said.set(name, rep.state);
        progress.step(
          rep.state === 'done' ? `${name} provisioned on ${host}` : `${host}: provisioning ${name}`,
        );
      }
      const factsKv = await store.get(AGENT_KEYS.member(name));
      const facts = factsKv ? (JSON.parse(factsKv.value) as NodeFacts) : null;
      const g = topology[r.group];
      const primary = newGroup && r.position === 0;
      const inRole = primary
        ? facts?.running === true && !facts.standbyDir && g?.primary?.name === name
        : facts?.running === true && facts.standbyDir && g?.replicas.some((e) => e.name === name) === true;
      if (!inRole) ready = false;
    }
    if (ready) return;
    if (Date.now() > deadline)
      await giveUp(
        `not in the cluster within ${waitS} s (see the agents' logs; \`pgscale status\` shows the nodes)`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * `pgscale remove-replica NODE` for a node added with `add-replica --host`: its record goes, the
 * decider drops it from the topology, and its agent then stops it, drops its slot and deletes its
 * data directory; the command waits for that agent's `removed`. A node of the file is the file's.
 */
export async function removeOnHost(cluster: Cluster, name: string, waitS: number): Promise<number> {
  return withStore(cluster, async (store) => {
    await takeInStoredNodes(cluster, store);
    const node = cluster.nodes().find((n) => n.name === name);
    if (!node)
      throw new ClusterError(
        ErrorCodes.NODE_NOT_FOUND,
        `no node named "${name}" in ${cluster.loaded.file} or in etcd`,
      );
    const kv = await store.get(NODE_KEYS.node(name));
    if (!kv)
      throw new ClusterError(
        ErrorCodes.USAGE,
        `${name} is declared in ${cluster.loaded.file}: take it out of that file on every host (remove-replica through etcd removes the nodes added with add-replica --host)`,
      );
    const leaderKv = await store.get(HA_KEYS.leader(node.group));
    if (leaderKv && (JSON.parse(leaderKv.value) as { node: string }).node === name)
      throw new ClusterError(
        ErrorCodes.USAGE,
        `${name} is the primary of group ${node.group}; switch over to another node before removing it`,
      );
    const group = cluster.nodes().filter((n) => n.group === node.group);
    if (group.length === 1)
      throw new ClusterError(ErrorCodes.USAGE, `${name} is the only node of group ${node.group}`);
    if (!(await store.compareAndDelete(kv.key, kv.revision)))
      throw new ClusterError(ErrorCodes.CONFIG_INVALID, `the record of ${name} changed meanwhile; try again`);
    progress.step(`${name} taken out of the state store; the agent of ${node.host} removes it`);
    const deadline = Date.now() + waitS * 1000;
    for (;;) {
      const rep = await store.get(NODE_KEYS.provisioning(name));
      if (rep && (JSON.parse(rep.value) as ProvisioningReport).state === 'removed') {
        await store.compareAndDelete(rep.key, rep.revision).catch(() => false);
        break;
      }
      const agentGone = (await store.get(AGENT_KEYS.agent(node.host))) === null;
      if (agentGone || Date.now() > deadline)
        throw new ClusterError(
          ErrorCodes.TIMEOUT,
          `${name} is out of the cluster, but ${agentGone ? `no agent runs on ${node.host}` : `the agent of ${node.host} did not remove it within ${waitS} s`}: its data directory stays there until it is deleted by hand`,
        );
      await new Promise((r) => setTimeout(r, 500));
    }
    out(`removed ${name} from group ${node.group}`);
    return 0;
  });
}
