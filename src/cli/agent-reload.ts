/**
 * SIGHUP on `pgscale agent` (systemd's `ExecReload`, or `kill -HUP`): this host's copy of the file
 * is read again and what an agent can take without a restart is applied to this host's running
 * nodes — PostgreSQL settings (`postgres.parameters`, replication settings…), written into each
 * node's pgscale.conf and reloaded, as `pgscale reload` does on one host. Edit the file on every
 * host and reload every agent: each applies it to its own nodes.
 *
 * - A file that does not load, or a change that cannot be made while the cluster runs (nodes,
 *   groups, names, directories, addresses: config-diff.ts's refusals), is logged and nothing is
 *   applied: the agent goes on with the file it had.
 * - Other changes (HA timings, the proxy's settings, users) are logged as taking effect when the
 *   agent restarts.
 * - A primary that named synchronous standbys before keeps naming them (the names from the new
 *   file); `replication.synchronous: off` clears them.
 */
import { loadConfig } from '../config/load.js';
import type { LoadedConfig, NodeRef } from '../config/load.js';
import { withClient } from '../cluster/sql.js';
import type { Cluster } from '../cluster/cluster.js';
import { diffConfig } from '../controller/config-diff.js';
import type { ConfigChange } from '../controller/config-diff.js';
import { errorMessage } from '../errors.js';
import { LocalNodeOps } from '../ha/node-ops.js';
import type { Logger } from '../obs/logger.js';

export interface AgentReload {
  /** The file as loaded now (null: it did not load, or a change was refused). */
  next: LoadedConfig | null;
  changes: ConfigChange[];
}

/** Reads the file again and compares it with the one the agent runs; logs what it finds. */
export function readAgentFile(current: LoadedConfig, log: Logger): AgentReload {
  let next: LoadedConfig;
  try {
    next = { ...loadConfig(current.file), dataDir: current.dataDir };
  } catch (e) {
    log.error(`reload: ${current.file} not applied, the agent keeps the file it had: ${errorMessage(e)}`);
    return { next: null, changes: [] };
  }
  const changes = diffConfig(current.config, next.config);
  const refused = changes.filter((c) => c.kind === 'refused');
  if (refused.length > 0) {
    log.error(
      { changes: refused.map((c) => ({ key: c.key, reason: c.reason })) },
      `reload: nothing applied, ${refused.map((c) => c.key).join(', ')} cannot change while the cluster runs`,
    );
    return { next: null, changes };
  }
  const later = changes.filter((c) => c.kind !== 'postgres');
  if (later.length > 0)
    log.warn(
      { changes: later.map((c) => c.key) },
      `reload: ${later.map((c) => c.key).join(', ')} take effect when the agent restarts`,
    );
  if (changes.length === 0) log.info(`reload: ${current.file} unchanged`);
  return { next, changes };
}

/** The PostgreSQL settings of the (already replaced) config applied to this host's running nodes. */
export async function reloadLocalNodes(
  cluster: Cluster,
  nodes: readonly NodeRef[],
  log: Logger,
): Promise<void> {
  const ops = new LocalNodeOps(cluster);
  for (const n of nodes) {
    const facts = ops.facts(n);
    if (!facts.running) continue;
    try {
      const pending = await withClient(cluster.target(n), async (c) => {
        const loadTime = async () =>
          (await c.query<{ t: string }>('SELECT pg_conf_load_time()::text AS t')).rows[0]!.t;
        const named =
          !facts.standbyDir &&
          cluster.config.replication.synchronous !== 'off' &&
          (await c.query<{ s: string }>('SHOW synchronous_standby_names')).rows[0]!.s !== '';
        const before = await loadTime();
        await cluster.reloadNodeConf(n, named);
        // The reload is a signal: wait until this node has read its files.
        for (let i = 0; i < 200 && (await loadTime()) === before; i++)
          await new Promise((r) => setTimeout(r, 50));
        const r = await c.query<{ name: string }>(
          'SELECT name FROM pg_settings WHERE pending_restart ORDER BY name',
        );
        return r.rows.map((x) => x.name);
      });
      log.info(
        { node: n.name, pending_restart: pending },
        `reload: ${n.name} reloaded` +
          (pending.length > 0 ? `; pending a restart: ${pending.join(', ')}` : ''),
      );
    } catch (e) {
      log.error({ node: n.name }, `reload: ${n.name} not reloaded: ${errorMessage(e)}`);
    }
  }
}
