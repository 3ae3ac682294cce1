/**
 * `pgscale add-group` and `remove-group`: change the number of groups online. Like add-replica,
 * the group is written into (or taken out of) pgscale.yaml with its comments kept, so the file
 * stays the source of truth, and a failed provisioning takes it back out (and deletes what was
 * made). When the cluster's controller runs, it is told (MEMBERS_SIGNAL) to re-read the nodes and
 * the command waits until it has: a new group then has a leader in high availability, its nodes'
 * health endpoints, a place in the proxy's topology and (when the sharding service follows a
 * reload) in the sharding catalog's groups; a removed group is let go by all of them before its
 * nodes are stopped and its directories deleted. Groups are numbered by position: only the last
 * one can be removed, never group 0, and never while the sharding catalog places a shard on it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { CATALOG_KEY } from '../../sharding/catalog-store.js';
import { decode } from '../../sharding/catalog-codec.js';
import { allNodes, defaultApiPort, findNode, parseConfig } from '../../config/load.js';
import type { NodeRef } from '../../config/load.js';
import { addGroupToText, nodeNameFor, removeLastGroupFromText } from '../../config/template.js';
import { ClusterError, ErrorCodes, UsageError } from '../../errors.js';
import { Cluster } from '../../cluster/cluster.js';
import { portInUse } from '../../cluster/ports.js';
import { embeddedStorePath } from '../../ha/embedded-store.js';
import { openStore } from '../../ha/open-store.js';
import { readStoreFile } from '../../ha/store-file.js';
import { liveController } from '../../controller/controller-file.js';
import type { ControllerInfo } from '../../web/status-report.js';
import { url } from '../../web/http-api.js';
import { intOption, parse } from '../args.js';
import { openCluster, out, progress } from '../context.js';
import { whileUnavailable } from '../store-keys.js';
import { agentStatus, tellController } from './replicas.js';
import { STORE_ADD_WAIT_S, addGroupOnHosts } from './store-members.js';

export const addGroupHelp = `Usage: pgscale add-group [-c FILE] [--standbys N] [--port P]
       pgscale add-group [-c FILE] --hosts H1,H2,… [--port P] [--wait S]

Adds a group (a primary and its streaming standbys) at the end of the cluster's groups while the
cluster runs: records it in pgscale.yaml, creates its primary with the cluster's settings, roles,
passwords and application database, clones its standbys and waits until they stream. A running
controller is then told, and the command waits until it supervises the group (high availability,
health endpoints, the proxy's topology, the sharding catalog's groups). Without a running
controller the group's nodes are left stopped; the next \`pgscale up\` starts them.

The new group holds no shard yet: \`pgscale rebalance\` or \`pgscale move-shard\` moves some there.

Options:
  --standbys N   standbys of the new group (default: as many as group 0 has)
  --port P       port of its primary; its standbys take the next free ports (default: the next
                 free ports after the cluster's highest node port)
  --hosts H1,…   a cluster of several hosts (ha.store: etcd, run by \`pgscale agent\`), from any
                 machine that reaches etcd: the primary on H1, a standby on each other host
                 (an agent must run on each). The nodes are recorded in etcd, the agents create
                 them, and the command waits until the group has its leader and its standbys
                 stream, in the topology of the proxies (--port: their port, default group 0's)
  --wait S       with --hosts: how long to wait for the agents (default ${STORE_ADD_WAIT_S} s)
`;

export const removeGroupHelp = `Usage: pgscale remove-group [-c FILE] GROUP

Removes the last group while the cluster runs: takes it out of pgscale.yaml, waits until a
running controller no longer supervises it, then stops its nodes and deletes their data
directories, logs and the group's WAL archive. Groups are numbered by position, so only the last
group can be removed, and never group 0. A group that the sharding catalog places shards on is
refused: move them away first (pgscale drain-group GROUP).
`;

/** What the commands read of the running controller's GET /services (null: no answer). */
interface ServiceView {
  name: string;
  state?: string;
  reloads?: boolean;
  status?: {
    running?: boolean;
    nodes?: { name: string }[];
    groups?: unknown;
    topology?: { primaries?: (string | null)[]; replicas?: string[][] };
  } | null;
}

async function services(c: ControllerInfo): Promise<ServiceView[] | null> {
  try {
    const res = await fetch(`${url(c.http.host, c.http.port)}/services`, {
      signal: AbortSignal.timeout(2000),
    });
    return ((await res.json()) as { services?: ServiceView[] }).services ?? null;
  } catch {
    return null;
  }
}

/**
 * The groups of the sharding catalog as the sharding service shows them (status.groups), or
 * null when there is nothing to wait for: no sharding service, or one that does not follow a
 * reload (it takes a new group in at its next start).
 */
function catalogGroups(list: ServiceView[]): string[] | null {
  const s = list.find((x) => x.name === 'sharding');
  if (!s || s.reloads !== true || !Array.isArray(s.status?.groups)) return null;
  return (s.status.groups as unknown[]).map(String);
}

/** Whether the controller's services all have `group`'s nodes in (want true) or out (false). */
function supervises(list: ServiceView[], group: number, nodes: NodeRef[], want: boolean): boolean {
  const names = nodes.map((n) => n.name);
  const agents = list.find((x) => x.name === 'agents')?.status?.nodes?.map((n) => n.name) ?? [];
  if (names.some((n) => agents.includes(n) !== want)) return false;
  const ha = list.find((x) => x.name === 'ha');
  if (ha) {
    const groups = (ha.status?.groups ?? []) as { group: number; leader: string | null }[];
    const g = groups.find((x) => x.group === group);
    if (want ? !g?.leader : g !== undefined) return false;
  }
  const proxy = list.find((x) => x.name === 'proxy');
  if (proxy?.status?.running) {
    const t = proxy.status.topology;
    if (want) {
      if (!t?.primaries?.[group]) return false;
      const standbys = names.filter((n) => n !== t.primaries![group]);
      if (standbys.some((n) => !t.replicas?.[group]?.includes(n))) return false;
    } else if ((t?.primaries?.length ?? 0) > group) return false;
  }
  const catalog = catalogGroups(list);
  if (catalog && catalog.includes(String(group)) !== want) return false;
  return true;
}

/** The next ports free both in the config and on the host, starting at `from`. */
async function freePorts(
  count: number,
  from: number,
  used: Set<number>,
  host: string,
  exactFirst: boolean,
): Promise<number[]> {
  const ports: number[] = [];
  let p = from;
  while (ports.length < count) {
    if (p > 65535) throw new ClusterError(ErrorCodes.PORT_IN_USE, `no free port left above ${from}`);
    const free = !used.has(p) && !(await portInUse(p, host));
    if (!free && exactFirst && ports.length === 0) {
      throw new ClusterError(ErrorCodes.PORT_IN_USE, `port ${p} (--port) is already in use`);
    }
    if (free) {
      ports.push(p);
      used.add(p);
    }
    p++;
  }
  return ports;
}

export async function addGroup(argv: string[]): Promise<number> {
  const { values } = parse('add-group', argv, {
    standbys: { type: 'string' },
    port: { type: 'string' },
    hosts: { type: 'string' },
    wait: { type: 'string' },
  });
  if (values.help) return (out(addGroupHelp), 0);
  const before = openCluster(values);
  if (typeof values.hosts === 'string') {
    if (values.standbys !== undefined)
      throw new UsageError('--standbys does not go with --hosts (a standby per host after the first)');
    return addGroupOnHosts(before, {
      hosts: values.hosts
        .split(',')
        .map((h) => h.trim())
        .filter((h) => h !== ''),
      port: values.port,
      waitS: intOption('wait', values.wait, 1, 86_400) ?? STORE_ADD_WAIT_S,
    });
  }
  if (values.wait !== undefined) throw new UsageError('--wait goes with --hosts');
  const { config, file } = before.loaded;
  before.secrets(); // the cluster must exist: `up` made its secrets
  const group = config.groups.length;
  const first = config.groups[0]!.nodes;
  const standbys = intOption('standbys', values.standbys, 0, 30) ?? first.length - 1;
  const explicitPort = intOption('port', values.port, 1, 65535);
  const nodes = allNodes(config);
  const host = first[0]!.host;
  const names = Array.from({ length: standbys + 1 }, (_, i) => nodeNameFor(group, i));
  const taken = names.find((n) => findNode(config, n));
  if (taken) throw new ClusterError(ErrorCodes.CONFIG_INVALID, `a node is already named ${taken} in ${file}`);
  const listen =
    config.http.listen === '0.0.0.0' || config.http.listen === '' ? '127.0.0.1' : config.http.listen;
  const used = new Set([...nodes.flatMap((n) => [n.port, n.apiPort]), config.proxy.port, config.http.port]);
  // The new nodes' default api ports (the next positions) are kept free of node ports.
  const apiDefaults = names.map((_, i) => defaultApiPort(config, nodes.length + i));
  const ports = await freePorts(
    names.length,
    explicitPort ?? Math.max(...nodes.map((n) => n.port)) + 1,
    new Set([...used, ...apiDefaults]),
    host,
    explicitPort !== undefined,
  );
  // A default api port that something has (a node port of a cluster laid out by hand, another
  // program) is replaced by a free one, written as api_port.
  const busy = new Set([...used, ...ports, ...apiDefaults]);
  const apiPorts: (number | undefined)[] = [];
  for (const d of apiDefaults) {
    const clash = used.has(d) || ports.includes(d) || (await portInUse(d, listen));
    apiPorts.push(clash ? (await freePorts(1, d + 1, busy, listen, false))[0] : undefined);
  }
  const text = readFileSync(file, 'utf8');
  const next = addGroupToText(
    text,
    names.map((name, i) => ({
      name,
      host,
      port: ports[i]!,
      ...(apiPorts[i] !== undefined ? { api_port: apiPorts[i] } : {}),
    })),
  );
  const loaded = parseConfig(next, file); // validates names and ports against the rest
  const cluster = new Cluster(loaded, progress, before.bins);
  const added = cluster.nodes().filter((n) => n.group === group);
  // Checked before anything is written: a failure below deletes the group's directories.
  await cluster.preflightGroup(group);
  writeFileSync(file, next);
  try {
    await cluster.addGroup(group);
  } catch (e) {
    progress.step(`provisioning group ${group} failed; removing it again`);
    await cluster.removeGroup(group).catch(() => undefined);
    writeFileSync(file, text);
    throw e;
  }
  out(
    `added group ${group}: ${added.map((n, i) => `${n.name} (${i === 0 ? 'primary' : 'standby'}, port ${n.port})`).join(', ')} ` +
      `(recorded in ${file})`,
  );
  if (!liveController(cluster.dataDir)) {
    await cluster.stopGroup(group);
    out(`no controller runs: group ${group}'s nodes are stopped; \`pgscale up\` starts them with the others`);
    return 0;
  }
  let joined = false;
  await tellController(cluster, `group ${group}`, async (c) => {
    const list = await services(c);
    if (!list || !supervises(list, group, added, true)) return false;
    if ((await agentStatus(cluster, added[0]!, '/primary')) !== 200) return false;
    joined = catalogGroups(list) !== null;
    return true;
  });
  out(
    `the controller supervises group ${group}: high availability, health endpoints, the proxy's topology` +
      (joined ? ', the sharding catalog' : ''),
  );
  out(`group ${group} holds no shard yet: \`pgscale rebalance\` moves some there`);
  return 0;
}

/**
 * How many shards of distributed tables the sharding catalog places on `group`, read from the
 * state store as the controller keeps it (reference tables, on every group, do not count).
 * The embedded store's file is read, not opened: opening it would run its lease timers here.
 */
export async function shardsOn(cluster: Cluster, group: number): Promise<number> {
  let value: string | null;
  if (cluster.config.ha.store === 'embedded') {
    const state = await readStoreFile(embeddedStorePath(cluster.dataDir));
    value = state.keys.find((k) => k.key === CATALOG_KEY)?.value ?? null;
  } else {
    value = await whileUnavailable(async () => {
      const store = await openStore(cluster.loaded);
      try {
        return (await store.get(CATALOG_KEY))?.value ?? null;
      } finally {
        await store.close().catch(() => undefined);
      }
    });
  }
  if (value === null) return 0;
  let shards = 0;
  for (const c of decode(value).colocations.values()) {
    if (c.type !== null) shards += c.placement.filter((g) => g === String(group)).length;
  }
  return shards;
}

export async function removeGroup(argv: string[]): Promise<number> {
  const { values, positionals } = parse('remove-group', argv, {}, 1);
  if (values.help) return (out(removeGroupHelp), 0);
  const arg = positionals[0];
  if (arg === undefined) throw new UsageError('name the group to remove (its number; see pgscale status)');
  if (!/^\d+$/.test(arg)) throw new UsageError(`GROUP must be a group number, not "${arg}"`);
  const group = Number(arg);
  const cluster = openCluster(values);
  const count = cluster.config.groups.length;
  if (group === 0) {
    throw new UsageError(
      'group 0 cannot be removed: it holds the local tables and the catalog of every database',
    );
  }
  if (group >= count) {
    throw new UsageError(`there is no group ${group}: ${cluster.loaded.file} has groups 0 to ${count - 1}`);
  }
  if (group !== count - 1) {
    throw new UsageError(
      `only the last group (${count - 1}) can be removed: groups are numbered by position, and removing ` +
        `group ${group} would renumber the ones after it`,
    );
  }
  const shards = await shardsOn(cluster, group);
  if (shards > 0) {
    throw new ClusterError(
      ErrorCodes.USAGE,
      `group ${group} holds ${shards} shard${shards === 1 ? '' : 's'} of distributed tables; ` +
        `drain it first: pgscale drain-group ${group}`,
    );
  }
  const nodes = cluster.nodes().filter((n) => n.group === group);
  const text = readFileSync(cluster.loaded.file, 'utf8');
  const next = removeLastGroupFromText(text, group);
  parseConfig(next, cluster.loaded.file);
  // The controller lets it go first: high availability would otherwise restart its stopped nodes.
  writeFileSync(cluster.loaded.file, next);
  try {
    const told = await tellController(cluster, `the removal of group ${group}`, async (c) => {
      const list = await services(c);
      return list !== null && supervises(list, group, nodes, false);
    });
    if (told) out(`the controller no longer supervises group ${group}`);
  } catch (e) {
    writeFileSync(cluster.loaded.file, text);
    await tellController(cluster, `group ${group} again`, () => Promise.resolve(true)).catch(() => false);
    throw e;
  }
  const stopped = await cluster.removeGroup(group);
  out(
    `removed group ${group} (${nodes.map((n) => n.name).join(', ')}): ` +
      `${stopped.length ? `stopped ${stopped.join(', ')}, ` : ''}data directories and archive deleted`,
  );
  return 0;
}
