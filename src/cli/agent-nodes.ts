/**
 * What an agent does with a local node whose record in the state store went (src/ha/store-nodes.ts:
 * `pgscale remove-replica` of a node added with `add-replica --host`, or an add the CLI gave up
 * on): once no topology that the proxies follow lists it (the decider dropped it at its next
 * cycle; bounded, so a decider that is gone does not hold it forever), the node is stopped, its
 * slot on the group's leader dropped, its data directory and log deleted, its report in
 * `members/` deleted; `provisioning/<name>` then says `removed`, which the CLI waits for.
 */
import { rmSync } from 'node:fs';
import type { Cluster } from '../cluster/cluster.js';
import { dropSlotIfIdle } from '../cluster/clone.js';
import { slotName } from '../cluster/conf.js';
import { withClient } from '../cluster/sql.js';
import type { ConnTarget } from '../cluster/sql.js';
import type { NodeRef } from '../config/load.js';
import { errorMessage } from '../errors.js';
import { AGENT_KEYS } from '../ha/agent-rpc.js';
import { HA_KEYS } from '../ha/leader-lease.js';
import { NODE_KEYS } from '../ha/store-nodes.js';
import type { ProvisioningReport } from '../ha/store-nodes.js';
import { TOPOLOGY_KEY } from '../ha/store-topology.js';
import type { LeaseId, StateStore } from '../ha/store.js';
import type { Logger } from '../obs/logger.js';
import type { GroupTopology } from '../topology/topology.js';

/** Says how the provisioning (or removal) of a node goes, under the agent's session. */
export async function reportProvisioning(
  store: StateStore,
  lease: LeaseId | null,
  host: string,
  name: string,
  r: Omit<ProvisioningReport, 'host' | 'at'>,
): Promise<void> {
  const value = JSON.stringify({ host, ...r, at: new Date().toISOString() });
  await store.put(NODE_KEYS.provisioning(name), value, lease ? { lease } : {}).catch(() => undefined);
}

/** Whether the topology in the store routes anything to `name`. */
async function inTopology(store: StateStore, name: string): Promise<boolean> {
  const kv = await store.get(TOPOLOGY_KEY);
  const groups = kv ? ((JSON.parse(kv.value) as { groups?: GroupTopology[] }).groups ?? []) : [];
  return groups.some((g) => g.primary?.name === name || g.replicas.some((e) => e.name === name));
}

/** Drops the slot once its walsender has gone (it outlives the stopped standby a moment). */
async function dropSlot(primary: ConnTarget, slot: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    await dropSlotIfIdle(primary, slot);
    const left = await withClient(primary, (c) =>
      c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]),
    );
    if (left.rowCount === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('still in use after 10 s');
}

export async function dropLocalNode(
  cluster: Cluster,
  store: StateStore,
  n: NodeRef,
  o: { host: string; lease: () => LeaseId | null; waitMs: number; log: Logger },
): Promise<void> {
  const until = Date.now() + o.waitMs;
  while (Date.now() < until && (await inTopology(store, n.name).catch(() => false)))
    await new Promise((r) => setTimeout(r, 250));
  await cluster.stopNode(n, 'fast').catch(() => undefined);
  const leaderKv = await store.get(HA_KEYS.leader(n.group)).catch(() => null);
  const leader = leaderKv ? (JSON.parse(leaderKv.value) as { node: string }).node : null;
  const p = leader ? cluster.nodes().find((x) => x.name === leader) : undefined;
  if (p)
    await dropSlot(cluster.target(p), slotName(n.name)).catch((e: unknown) =>
      o.log.warn(`slot ${slotName(n.name)} on ${p.name} not dropped: ${errorMessage(e)}`),
    );
  const { pgdata, log } = cluster.paths(n.name);
  rmSync(pgdata, { recursive: true, force: true });
  rmSync(log, { force: true });
  const kv = await store.get(AGENT_KEYS.member(n.name)).catch(() => null);
  if (kv) await store.compareAndDelete(kv.key, kv.revision).catch(() => false);
  await reportProvisioning(store, o.lease(), o.host, n.name, { state: 'removed' });
  o.log.info({ node: n.name }, `${n.name}: no longer in the cluster; stopped and deleted`);
}
