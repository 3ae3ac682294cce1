/**
 * The state store a cluster's config names: the embedded one in <data_dir>/state/store.json for
 * one host, or etcd for several (its key prefix is ha.etcd.prefix + "/" + cluster.id, so
 * clusters can share an etcd; src/ha/store-claim.ts refuses two clusters on one prefix). etcd's own authentication, when on, takes its user from
 * PGSCALE_ETCD_USER and password from PGSCALE_ETCD_PASSWORD (never from the YAML file).
 */
import { clusterId } from '../config/load.js';
import type { LoadedConfig } from '../config/load.js';
import type { Logger } from '../obs/logger.js';
import { EmbeddedStore, embeddedStorePath } from './embedded-store.js';
import { EtcdStore } from './etcd-store.js';
import type { StateStore } from './store.js';

export async function openStore(loaded: LoadedConfig, logger?: Logger): Promise<StateStore> {
  const ha = loaded.config.ha;
  if (ha.store === 'embedded') return EmbeddedStore.open(embeddedStorePath(loaded.dataDir));
  const user = process.env.PGSCALE_ETCD_USER;
  const password = process.env.PGSCALE_ETCD_PASSWORD;
  return EtcdStore.open({
    endpoints: ha.etcd.endpoints,
    prefix: storePrefix(loaded),
    timeoutMs: ha.etcd.timeout_ms,
    ...(user !== undefined && password !== undefined ? { username: user, password } : {}),
    ...(logger ? { logger } : {}),
  });
}

/** Where the cluster's keys live in etcd, for messages and for etcdctl: `/pgscale/<id>/`. */
export function storePrefix(loaded: LoadedConfig): string {
  return `${loaded.config.ha.etcd.prefix.replace(/\/+$/, '')}/${clusterId(loaded.config)}/`;
}
