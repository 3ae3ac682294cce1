/**
 * The state store a cluster's config names: the embedded one in <data_dir>/state/store.json for
 * one host, or etcd for several (its key prefix is ha.etcd.prefix + "/" + the cluster's name, so
 * clusters can share an etcd). etcd's own authentication, when on, takes its user from
 * PGSCALE_ETCD_USER and password from PGSCALE_ETCD_PASSWORD (never from the YAML file).
 */
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
    prefix: `${ha.etcd.prefix.replace(/\/+$/, '')}/${loaded.config.cluster.name}/`,
    timeoutMs: ha.etcd.timeout_ms,
    ...(user !== undefined && password !== undefined ? { username: user, password } : {}),
    ...(logger ? { logger } : {}),
  });
}
