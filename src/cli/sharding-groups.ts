/**
 * The sharding catalog's groups follow the cluster's (add-group, remove-group, or groups found in
 * the configuration at start): see syncCatalogGroups().
 */
import type { Logger } from '../obs/logger.js';
import { isCatalogError, withGroups } from '../sharding/catalog.js';
import type { CatalogStore } from '../sharding/catalog-store.js';
import { pgGroupSession } from '../sharding/distribute.js';
import type { PgGroupSession } from '../sharding/every-group.js';
import { prepareJoin } from '../sharding/group-join.js';

export interface GroupSyncDeps {
  readonly logger: Logger;
  /** Superuser sessions on these groups' primaries. */
  open(groups: readonly string[]): Promise<{ sessions: PgGroupSession[]; close(): Promise<void> }>;
  /** Rebuilds the global tables (the groups changed). */
  rebuild(): Promise<void>;
}

/**
 * Brings the catalog's groups in line with the configuration's (`want`): a new group first gets
 * every table of the catalog (sharding/group-join.ts), then joins; a group gone from the
 * configuration leaves the catalog when it holds no shard of a distributed table. The global
 * tables are rebuilt after a change. Never throws (logged).
 */
export async function syncCatalogGroups(
  catalogs: CatalogStore,
  want: readonly string[],
  d: GroupSyncDeps,
): Promise<void> {
  const have = catalogs.current.groups;
  try {
    for (const g of want) {
      if (have.includes(g)) continue;
      const join = async () => {
        const r = await catalogs.update((c) => withGroups(c, [...c.groups, g]));
        if (isCatalogError(r)) throw new Error(r.message);
      };
      if (catalogs.current.tables.size === 0) await join();
      else {
        const opened = await d.open(['0', g]);
        try {
          const [g0, target] = opened.sessions.map((s) => pgGroupSession(s.group, s.client));
          await prepareJoin(catalogs.current, g0!, target!, want.indexOf(g), join, (p) =>
            d.logger.info(p, `sharding: group ${g}: reference table ${p.table} copied (${p.rows} rows)`),
          );
        } finally {
          await opened.close();
        }
      }
      d.logger.info(`sharding: group ${g} joined the catalog (it holds no shard until a rebalance)`);
    }
    const gone = catalogs.current.groups.filter((g) => !want.includes(g));
    const joined = want.some((g) => !have.includes(g));
    if (gone.length > 0) {
      const r = await catalogs.update((c) =>
        withGroups(
          c,
          c.groups.filter((g) => want.includes(g)),
        ),
      );
      if (isCatalogError(r)) d.logger.warn(`sharding catalog: groups not updated: ${r.message}`);
      else d.logger.info(`sharding: group(s) ${gone.join(', ')} left the catalog`);
    }
    if (joined || gone.length > 0) await d.rebuild();
  } catch (e) {
    d.logger.error(
      { err: e instanceof Error ? e.message : String(e) },
      'sharding: the catalog could not take in the groups of the configuration',
    );
  }
}
