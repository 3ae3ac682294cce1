/**
 * The state store a cluster's config names: the embedded one in <data_dir>/state/store.json for
 * one host, or etcd for several.
 */
import type { LoadedConfig } from '../config/load.js';
import type { Logger } from '../obs/logger.js';
import { EmbeddedStore, embeddedStorePath } from './embedded-store.js';
import type { StateStore } from './store.js';

export async function openStore(loaded: LoadedConfig, _logger?: Logger): Promise<StateStore> {
  const ha = loaded.config.ha;
  switch (ha.store) {
    case 'embedded':
      return EmbeddedStore.open(embeddedStorePath(loaded.dataDir));
    case 'etcd':
      throw new Error('etcd store: not wired yet');
  }
}
