/** What every cluster command needs: the loaded config, the cluster object and a printer. */
import { loadConfig, defaultConfigPath } from '../config/load.js';
import type { LoadedConfig } from '../config/load.js';
import { Cluster } from '../cluster/cluster.js';
import type { Reporter } from '../cluster/cluster.js';

export const out = (s: string): void => {
  process.stdout.write(s + '\n');
};

export const progress: Reporter = {
  step: (m) => process.stdout.write(`  ${m}\n`),
};

export function openCluster(
  values: Record<string, string | boolean | undefined>,
  reporter: Reporter = progress,
): Cluster {
  const file = typeof values.config === 'string' ? values.config : defaultConfigPath();
  return new Cluster(warnOnce(loadConfig(file)), reporter);
}

const warned = new Set<string>();

/** Prints the config file's warnings (an old key name) on stderr, once per process; returns it. */
export function warnOnce(loaded: LoadedConfig): LoadedConfig {
  for (const w of loaded.warnings ?? []) {
    if (warned.has(w)) continue;
    warned.add(w);
    process.stderr.write(`warning: ${w}\n`);
  }
  return loaded;
}
