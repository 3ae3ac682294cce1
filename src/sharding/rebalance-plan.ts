/**
 * Which shards a rebalance or a drain moves (pure). The unit is a shard group: shard `r` of a
 * colocation, every colocated table's shard `r` together (they move together, as in Citus).
 *
 * - **by count** (the default): each colocation is spread evenly — every group holds
 *   ⌊n/g⌋ or ⌈n/g⌉ of its n shards, and the groups with the extra ones are the least loaded
 *   over all colocations — so every table's rows and load spread over the groups, whatever its
 *   size.
 * - **by size**: shard groups move from the largest group to the smallest while a move narrows
 *   the gap between them by more than a tenth of the average group's size.
 * - **drain**: every shard group of the drained group goes to the group that holds the fewest
 *   (by count or size), the drained group excluded.
 *
 * Moves are ordered so that consecutive ones leave different groups where they can.
 */
import type { Catalog } from './types.js';

export interface PlannedMove {
  readonly colocation: number;
  readonly shard: number;
  readonly from: string;
  readonly to: string;
}

export interface PlanOptions {
  readonly by?: 'count' | 'size';
  /** Bytes of each shard group, by `${colocation}:${shard}` (by size). */
  readonly sizes?: ReadonlyMap<string, number>;
  /** Groups that take no shard (a group being drained). */
  readonly exclude?: readonly string[];
}

const key = (c: number, r: number) => `${c}:${r}`;

function distributedColocations(catalog: Catalog) {
  const used = new Set(
    [...catalog.tables.values()].filter((t) => t.kind === 'distributed').map((t) => t.colocationId),
  );
  return [...catalog.colocations.values()]
    .filter((c) => c.type !== null && used.has(c.id))
    .sort((a, b) => a.id - b.id);
}

/** Moves that even out the shards over the catalog's groups (`exclude`d ones take none and are emptied). */
export function planRebalance(catalog: Catalog, o: PlanOptions = {}): PlannedMove[] {
  const exclude = new Set(o.exclude ?? []);
  const groups = catalog.groups.filter((g) => !exclude.has(g));
  if (groups.length === 0) return [];
  return o.by === 'size'
    ? bySize(catalog, groups, exclude, o.sizes ?? new Map())
    : byCount(catalog, groups, exclude);
}

/** Moves that empty `group`, each shard group to the least loaded of the others. */
export function planDrain(catalog: Catalog, group: string, o: PlanOptions = {}): PlannedMove[] {
  return planRebalance(catalog, { ...o, exclude: [...(o.exclude ?? []), group] });
}

function byCount(catalog: Catalog, groups: readonly string[], exclude: ReadonlySet<string>): PlannedMove[] {
  const total = new Map(catalog.groups.map((g) => [g, 0]));
  const colocs = distributedColocations(catalog);
  for (const c of colocs) for (const g of c.placement) total.set(g, (total.get(g) ?? 0) + 1);
  const moves: PlannedMove[] = [];
  for (const c of colocs) {
    const placement = [...c.placement];
    const count = new Map(groups.map((g) => [g, 0]));
    for (const g of placement) if (count.has(g)) count.set(g, count.get(g)! + 1);
    const n = c.shardCount;
    const base = Math.floor(n / groups.length);
    let extra = n % groups.length;
    // The extra shards go to the groups that hold the fewest overall (then by position).
    const quota = new Map(groups.map((g) => [g, base]));
    for (const g of [...groups].sort(
      (a, b) => total.get(a)! - total.get(b)! || groups.indexOf(a) - groups.indexOf(b),
    )) {
      if (extra === 0) break;
      quota.set(g, base + 1);
      extra--;
    }
    // Keep the extra one where a group already has it, to move less.
    for (const g of groups) {
      if (quota.get(g) === base && (count.get(g) ?? 0) > base) {
        const donor = groups.find((h) => quota.get(h) === base + 1 && (count.get(h) ?? 0) <= base);
        if (donor !== undefined) {
          quota.set(donor, base);
          quota.set(g, base + 1);
        }
      }
    }
    const over: number[] = [];
    const held = new Map(groups.map((g) => [g, 0]));
    for (let r = 0; r < n; r++) {
      const g = placement[r]!;
      if (exclude.has(g) || !held.has(g) || held.get(g)! >= quota.get(g)!) over.push(r);
      else held.set(g, held.get(g)! + 1);
    }
    for (const r of over) {
      const to = groups.find((g) => held.get(g)! < quota.get(g)!);
      if (to === undefined) break;
      held.set(to, held.get(to)! + 1);
      const from = placement[r]!;
      total.set(from, total.get(from)! - 1);
      total.set(to, total.get(to)! + 1);
      moves.push({ colocation: c.id, shard: r, from, to });
    }
  }
  return interleave(moves);
}

function bySize(
  catalog: Catalog,
  groups: readonly string[],
  exclude: ReadonlySet<string>,
  sizes: ReadonlyMap<string, number>,
): PlannedMove[] {
  const units: { c: number; r: number; g: string; size: number }[] = [];
  for (const c of distributedColocations(catalog))
    c.placement.forEach((g, r) =>
      units.push({ c: c.id, r, g, size: Math.max(1, sizes.get(key(c.id, r)) ?? 1) }),
    );
  const load = new Map(groups.map((g) => [g, 0]));
  for (const u of units) if (load.has(u.g)) load.set(u.g, load.get(u.g)! + u.size);
  const moves: PlannedMove[] = [];
  const least = () =>
    [...load.entries()].sort((a, b) => a[1] - b[1] || groups.indexOf(a[0]) - groups.indexOf(b[0]))[0]![0];
  // Excluded groups give everything away, largest first.
  for (const u of units.filter((x) => exclude.has(x.g)).sort((a, b) => b.size - a.size)) {
    const to = least();
    moves.push({ colocation: u.c, shard: u.r, from: u.g, to });
    load.set(to, load.get(to)! + u.size);
    u.g = to;
  }
  const total = [...load.values()].reduce((a, b) => a + b, 0);
  const threshold = total / groups.length / 10;
  for (let i = 0; i < units.length * 2; i++) {
    const sorted = [...load.entries()].sort((a, b) => b[1] - a[1]);
    const [big, bigLoad] = sorted[0]!;
    const [small, smallLoad] = sorted[sorted.length - 1]!;
    const gap = bigLoad - smallLoad;
    // The unit whose move leaves the smallest gap between the two.
    let best: (typeof units)[number] | null = null;
    let bestGap = gap;
    for (const u of units) {
      if (u.g !== big) continue;
      const after = Math.abs(gap - 2 * u.size);
      if (after < bestGap) {
        best = u;
        bestGap = after;
      }
    }
    if (best === null || gap - bestGap <= threshold) break;
    moves.push({ colocation: best.c, shard: best.r, from: big, to: small });
    load.set(big, bigLoad - best.size);
    load.set(small, smallLoad + best.size);
    best.g = small;
  }
  return interleave(moves);
}

/** Reorders moves so that consecutive ones leave different groups where possible. */
function interleave(moves: PlannedMove[]): PlannedMove[] {
  const bySource = new Map<string, PlannedMove[]>();
  for (const m of moves) bySource.set(m.from, [...(bySource.get(m.from) ?? []), m]);
  const out: PlannedMove[] = [];
  while (out.length < moves.length)
    for (const list of bySource.values()) {
      const m = list.shift();
      if (m) out.push(m);
    }
  return out;
}
