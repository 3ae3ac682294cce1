/**
 * The cluster's keys in its state store, seen from the CLI: who this cluster is when it claims
 * them (src/ha/store-claim.ts), the check `up` makes before anything starts, and the removal
 * `destroy` makes. Only a shared store (etcd) needs them: the embedded store lives in the data
 * directory, which nothing else uses.
 */
import type { Cluster } from '../cluster/cluster.js';
import { ErrorCodes, errorMessage } from '../errors.js';
import { StoreError } from '../ha/store.js';
import { openStore, storePrefix } from '../ha/open-store.js';
import { checkClaim, claimStore, removeClaimedKeys } from '../ha/store-claim.js';
import type { ClaimantInfo } from '../ha/store-claim.js';
import type { StateStore } from '../ha/store.js';

export function claimant(cluster: Cluster, where: string): ClaimantInfo {
  return {
    instance: cluster.identity()?.id ?? null,
    name: cluster.config.cluster.name,
    dataDir: cluster.dataDir,
    config: cluster.loaded.file,
    where,
  };
}

/** Opens the store and claims the cluster's keys in it (what the controller's HA runs on). */
export async function openClaimedStore(
  cluster: Cluster,
  open: () => Promise<StateStore>,
): Promise<StateStore> {
  const store = await open();
  try {
    const me = claimant(cluster, store.describe);
    if (me.instance === null) throw new Error(`${cluster.dataDir} has no cluster.json`);
    await claimStore(store, { ...me, instance: me.instance });
    return store;
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
}

/**
 * How long a CLI command keeps asking an etcd that does not answer before it gives up. One
 * operation's timeout (`ha.etcd.timeout_ms`, 1 s by default) is tuned for the HA loop, which asks
 * again a quarter of a second later; a command that runs once would otherwise fail on the first
 * slow answer of a busy etcd (seen on a loaded 2-core machine).
 */
const CLI_STORE_PATIENCE_MS = 15_000;

/** Runs `op`, again while the store is unavailable (not on any other error), up to `patienceMs`. */
export async function whileUnavailable<T>(
  op: () => Promise<T>,
  patienceMs = CLI_STORE_PATIENCE_MS,
): Promise<T> {
  const until = Date.now() + patienceMs;
  for (let wait = 250; ; wait = Math.min(wait * 2, 2_000)) {
    try {
      return await op();
    } catch (e) {
      const transient = e instanceof StoreError && e.code === ErrorCodes.STORE_UNAVAILABLE;
      if (!transient || Date.now() + wait > until) throw e;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** `up`: refuses, before anything starts, keys another cluster holds. */
export async function checkStoreKeys(cluster: Cluster): Promise<void> {
  const { ha } = cluster.config;
  if (!ha.enabled || ha.store !== 'etcd') return;
  await whileUnavailable(async () => {
    const store = await openStore(cluster.loaded);
    try {
      await checkClaim(store, claimant(cluster, store.describe));
    } finally {
      await store.close();
    }
  });
}

/** `destroy`: removes the cluster's keys from etcd; returns what to tell the operator. */
export async function destroyStoreKeys(cluster: Cluster): Promise<string | null> {
  if (cluster.config.ha.store !== 'etcd') return null;
  const prefix = storePrefix(cluster.loaded);
  let store: StateStore;
  try {
    store = await openStore(cluster.loaded);
  } catch (e) {
    return (
      `warning: the keys under ${prefix} were not removed (${errorMessage(e)}); ` +
      `remove them with \`etcdctl del --prefix ${prefix}\``
    );
  }
  try {
    const r = await whileUnavailable(() => removeClaimedKeys(store, cluster.identity()?.id ?? null));
    if ('removed' in r) return `removed ${r.removed} keys under ${prefix} from etcd`;
    return `left the keys under ${prefix} alone: they belong to ${r.heldBy ? `cluster "${r.heldBy.name}" (data directory ${r.heldBy.data_dir} on host ${r.heldBy.host})` : 'something else'}`;
  } catch (e) {
    return (
      `warning: the keys under ${prefix} were not all removed (${errorMessage(e)}); ` +
      `remove them with \`etcdctl del --prefix ${prefix}\``
    );
  } finally {
    await store.close();
  }
}
