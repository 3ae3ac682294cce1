/**
 * One cluster per set of keys. A state store shared by several clusters (one etcd) keeps each
 * cluster's keys under its cluster.id; two clusters given the same id (a copied pgscale.yaml, or
 * two files from before cluster.id, which used the name, "pgscale" for every `init`) would read
 * and write each other's leader keys: a switchover in one became a failover in the other. So the
 * first controller to use the keys claims them with a marker key, created only if absent,
 * holding the identity of its data directory (the random uuid in <data_dir>/cluster.json), and
 * any other cluster is refused with a message naming the holder. `destroy` removes the keys of
 * the cluster that holds them, and only those.
 */
import { hostname } from 'node:os';
import { ErrorCodes } from '../errors.js';
import { StoreError } from './store.js';
import type { StateStore } from './store.js';

/** The marker key, relative to the cluster's prefix. */
export const CLAIM_KEY = 'cluster';

/** Who holds the keys: the value of the marker. */
export interface ClaimHolder {
  /** The holder's data directory identity (cluster.json's id). */
  readonly instance: string;
  readonly name: string;
  readonly host: string;
  readonly data_dir: string;
  readonly config: string;
  readonly claimed_at: string;
}

/** This cluster, as it would describe itself in a claim. */
export interface ClaimantInfo {
  /** Its data directory's identity; null before its first `up` created one. */
  readonly instance: string | null;
  readonly name: string;
  readonly dataDir: string;
  readonly config: string;
  /** Where the keys are, for messages (e.g. `etcd … (prefix /pgscale/main/)`). */
  readonly where: string;
}

function parseHolder(value: string): ClaimHolder | null {
  try {
    const v = JSON.parse(value) as Partial<ClaimHolder>;
    return typeof v.instance === 'string' ? (v as ClaimHolder) : null;
  } catch {
    return null;
  }
}

function refusal(me: ClaimantInfo, holder: ClaimHolder | null): StoreError {
  const who = holder
    ? `cluster "${holder.name}" (data directory ${holder.data_dir} on host ${holder.host}, config ${holder.config}, since ${holder.claimed_at})`
    : 'something that is not a pgscale cluster of this version (its marker key is unreadable)';
  return new StoreError(
    ErrorCodes.STORE_CLAIMED,
    `the state store keys of cluster "${me.name}" (${me.where}) already belong to ${who}; ` +
      `two clusters on the same keys would take each other's primaries. Give this cluster its own ` +
      `cluster.id in ${me.config} (pgscale init writes a unique one)`,
  );
}

/** Reads the marker; throws the refusal when another cluster holds the keys. */
export async function checkClaim(store: StateStore, me: ClaimantInfo): Promise<ClaimHolder | null> {
  const kv = await store.get(CLAIM_KEY);
  if (!kv) return null;
  const holder = parseHolder(kv.value);
  if (!holder || holder.instance !== me.instance) throw refusal(me, holder);
  return holder;
}

/** Creates the marker if absent (compare-and-set on absence), else checks it is ours. */
export async function claimStore(store: StateStore, me: ClaimantInfo & { instance: string }): Promise<void> {
  const mine: ClaimHolder = {
    instance: me.instance,
    name: me.name,
    host: hostname(),
    data_dir: me.dataDir,
    config: me.config,
    claimed_at: new Date().toISOString(),
  };
  if ((await store.compareAndSet(CLAIM_KEY, 0, JSON.stringify(mine))) !== null) return;
  await checkClaim(store, me);
}

/**
 * Deletes every key of the cluster when it holds them (the marker last, so an interrupted run
 * can be repeated); returns how many were removed, or the holder when another cluster holds them
 * (then nothing is touched). No marker: nothing is known to be ours, nothing is touched.
 */
export async function removeClaimedKeys(
  store: StateStore,
  instance: string | null,
): Promise<{ removed: number } | { heldBy: ClaimHolder | null }> {
  const kv = await store.get(CLAIM_KEY);
  if (!kv) return { removed: 0 };
  const holder = parseHolder(kv.value);
  if (!holder || instance === null || holder.instance !== instance) return { heldBy: holder };
  let removed = 0;
  for (const k of await store.list('')) {
    if (k.key === CLAIM_KEY) continue;
    if (await store.compareAndDelete(k.key, k.revision)) removed++;
  }
  if (await store.compareAndDelete(CLAIM_KEY, kv.revision)) removed++;
  return { removed };
}
