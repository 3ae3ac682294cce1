/**
 * What changed between the configuration a cluster runs with and a new version of its file, and
 * how each change can be applied while the cluster runs (`pgscale reload`, `up` on a running
 * cluster, `edit-config`). A pure function of the two configs: every changed leaf key is sorted
 * into one kind —
 * - `postgres`: settings rendered into each node's pgscale.conf or pg_hba.conf, applied with a
 *   reload of the nodes (those PostgreSQL takes only at a start are then pending restart);
 * - `proxy`: the proxy's own reload (it says which settings need its restart);
 * - `ha`: read by high availability at its next cycle;
 * - `next_start`: read only when the controller starts (log rotation, sections this version
 *   does not reload);
 * - `refused`: what cannot change online (nodes and groups have their own commands; names,
 *   directories and addresses of what runs): a reload with any refused change applies nothing.
 * Like PgBouncer's settings table, it says per setting what it takes.
 */
import type { Config } from '../config/schema.js';

export type ChangeKind = 'postgres' | 'proxy' | 'ha' | 'users' | 'next_start' | 'refused';

export interface ConfigChange {
  /** Dotted key, e.g. postgres.parameters.work_mem or groups[0].nodes. */
  key: string;
  kind: ChangeKind;
  /** JSON of the running value (undefined: not set). */
  from?: unknown;
  to?: unknown;
  /** For a refused change: why, and the command to use instead. */
  reason?: string;
}

const DOWN_UP = 'it cannot change while the cluster runs: `pgscale down`, edit the file, `pgscale up`';

/** Keys (or prefixes, ending with a dot) that cannot change online, with what to do instead. */
const REFUSED: [string, string][] = [
  ['cluster.name', 'the cluster name names its data and its keys: it cannot change'],
  ['cluster.id', 'the cluster id names its keys in the state store: it cannot change'],
  ['cluster.data_dir', `the data directory of running nodes: ${DOWN_UP}`],
  ['cluster.tls.', DOWN_UP],
  ['postgres.bin_dir', `the PostgreSQL binaries of running nodes: ${DOWN_UP}`],
  ['postgres.superuser', 'the superuser is created at initdb: it cannot change'],
  ['postgres.locale', 'the locale is set at initdb: it cannot change'],
  ['app.', 'the application database and role are created at bootstrap: it cannot change'],
  ['http.', `the controller's HTTP API address: ${DOWN_UP}`],
  ['ha.enabled', DOWN_UP],
  ['ha.store', DOWN_UP],
  ['ha.etcd.', DOWN_UP],
  ['proxy.enabled', DOWN_UP],
];

/** Sections whose every key is rendered into the nodes' configuration files. */
const POSTGRES = [
  'postgres.parameters.',
  'postgres.max_prepared_transactions',
  'postgres.client_networks',
  'replication.',
];

function kindOf(key: string): { kind: ChangeKind; reason?: string } {
  const hit = (p: string) => key === p || (p.endsWith('.') && key.startsWith(p));
  const refused = REFUSED.find(([p]) => hit(p));
  if (refused) return { kind: 'refused', reason: refused[1] };
  if (POSTGRES.some(hit)) return { kind: 'postgres' };
  if (key.startsWith('proxy.')) return { kind: 'proxy' };
  // Roles and databases are made on every group's primary, then the proxy learns them.
  if (key.startsWith('users.') || key.startsWith('databases.')) return { kind: 'users' };
  // The leader lease is granted with its TTL: a new TTL holds from the controller's next start.
  // The agents open their watchdog at start.
  if (key === 'ha.ttl' || key.startsWith('ha.watchdog.')) return { kind: 'next_start' };
  if (key.startsWith('ha.')) return { kind: 'ha' };
  return { kind: 'next_start' };
}

/** Leaf keys of a plain value: objects are walked, arrays and scalars are leaves. */
function flatten(v: unknown, prefix: string, into: Map<string, unknown>): void {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, into);
  } else if (v !== undefined) {
    into.set(prefix, v);
  }
}

/**
 * The groups section: nodes and groups come and go with their own commands, and what a node is
 * (its name, address, ports) is not changed under it; anything else is refused too.
 */
function groupChanges(running: Config['groups'], next: Config['groups']): ConfigChange[] {
  const out: ConfigChange[] = [];
  const refuse = (key: string, reason: string, from?: unknown, to?: unknown) =>
    out.push({ key, kind: 'refused', reason, from, to });
  if (next.length > running.length)
    refuse('groups', 'a group is added with `pgscale add-group`', running.length, next.length);
  if (next.length < running.length)
    refuse('groups', 'a group is removed with `pgscale remove-group`', running.length, next.length);
  for (let g = 0; g < Math.min(running.length, next.length); g++) {
    const was = running[g]!;
    const now = next[g]!;
    for (const n of now.nodes.filter((x) => !was.nodes.some((w) => w.name === x.name)))
      refuse(`groups[${g}].nodes`, `a node (${n.name}) is added with \`pgscale add-replica --group ${g}\``);
    for (const n of was.nodes.filter((x) => !now.nodes.some((w) => w.name === x.name)))
      refuse(`groups[${g}].nodes`, `a node (${n.name}) is removed with \`pgscale remove-replica ${n.name}\``);
    for (const n of now.nodes) {
      const w = was.nodes.find((x) => x.name === n.name);
      if (!w) continue;
      const a = new Map<string, unknown>();
      const b = new Map<string, unknown>();
      flatten(w, '', a);
      flatten(n, '', b);
      for (const k of new Set([...a.keys(), ...b.keys()])) {
        if (JSON.stringify(a.get(k)) === JSON.stringify(b.get(k))) continue;
        refuse(
          `groups[${g}].nodes[${n.name}].${k}`,
          `the ${k} of a running node: ${DOWN_UP} (or add a new node with \`pgscale add-replica\` and remove this one)`,
          a.get(k),
          b.get(k),
        );
      }
    }
    const { nodes: _wn, ...wasRest } = was;
    const { nodes: _nn, ...nowRest } = now;
    const a = new Map<string, unknown>();
    const b = new Map<string, unknown>();
    flatten(wasRest, `groups[${g}]`, a);
    flatten(nowRest, `groups[${g}]`, b);
    for (const k of new Set([...a.keys(), ...b.keys()])) {
      if (JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k))) refuse(k, DOWN_UP, a.get(k), b.get(k));
    }
  }
  return out;
}

/** Every change from `running` to `next`, in key order, groups last. */
export function diffConfig(running: Config, next: Config): ConfigChange[] {
  const { groups: rg, ...r } = running;
  const { groups: ng, ...n } = next;
  const a = new Map<string, unknown>();
  const b = new Map<string, unknown>();
  flatten(r, '', a);
  flatten(n, '', b);
  const out: ConfigChange[] = [];
  for (const key of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const from = a.get(key);
    const to = b.get(key);
    if (JSON.stringify(from) === JSON.stringify(to)) continue;
    out.push({
      key,
      ...kindOf(key),
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
    });
  }
  return [...out, ...groupChanges(rg, ng)];
}

/** One line per change for people: `key: from → to (what it takes)`. */
export function describeChange(c: ConfigChange): string {
  const v = (x: unknown) => (x === undefined ? '(not set)' : JSON.stringify(x));
  const values = c.from !== undefined || c.to !== undefined ? `: ${v(c.from)} → ${v(c.to)}` : '';
  return `${c.key}${values}${c.reason ? ` — ${c.reason}` : ''}`;
}
