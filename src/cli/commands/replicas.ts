/**
 * `pgscale add-replica` and `remove-replica`: change a group's standbys online. The node is
 * written into (or removed from) pgscale.yaml with its comments kept, so the file stays the
 * source of truth; a failed provisioning takes the node back out. When the cluster's controller
 * runs, it is told (MEMBERS_SIGNAL) to re-read the nodes, and the command waits until it has:
 * an added node is then supervised by high availability, followed by the proxy's read routers
 * and serving its health endpoints (a switchover to it works at once); a removed node is let go
 * by the controller and left out of the proxy's read routing before it is stopped, so that high
 * availability does not restart it and no read goes to it while it stops.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { allNodes, defaultApiPort, findNode, loadConfig, parseConfig } from '../../config/load.js';
import { addNodeToText, nodeNameFor, removeNodeFromText } from '../../config/template.js';
import { ClusterError, ErrorCodes, UsageError } from '../../errors.js';
import { Cluster } from '../../cluster/cluster.js';
import { portInUse } from '../../cluster/ports.js';
import type { NodeRef } from '../../config/load.js';
import { liveController } from '../../controller/controller-file.js';
import type { ControllerInfo } from '../../web/status-report.js';
import { url } from '../../web/http-api.js';
import { intOption, parse, renamedOption } from '../args.js';
import { openCluster, out, progress } from '../context.js';
import { MEMBERS_SIGNAL } from './controller.js';
import { STORE_ADD_WAIT_S, addReplicaOnHost, removeOnHost } from './store-members.js';
import { storeMode } from './ha.js';

/** How long add/remove-replica wait for a running controller to take the change in. */
export const CONTROLLER_WAIT_MS = 60_000;

/** Status of GET path on a node's health endpoints, or null when nothing answers. */
export async function agentStatus(cluster: Cluster, n: NodeRef, path: string): Promise<number | null> {
  const listen = cluster.config.http.listen;
  const host = listen === '0.0.0.0' || listen === '' ? '127.0.0.1' : listen === '::' ? '[::1]' : listen;
  try {
    const res = await fetch(
      `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${n.apiPort}${path}`,
      {
        signal: AbortSignal.timeout(2000),
      },
    );
    await res.arrayBuffer();
    return res.status;
  } catch {
    return null;
  }
}

/** The nodes whose health endpoints the running controller serves (GET /services), or null. */
async function supervised(c: { http: { host: string; port: number } }): Promise<string[] | null> {
  try {
    const res = await fetch(`${url(c.http.host, c.http.port)}/services`, {
      signal: AbortSignal.timeout(2000),
    });
    const body = (await res.json()) as {
      services?: { name: string; status?: { nodes?: { name: string }[] } }[];
    };
    const agents = body.services?.find((x) => x.name === 'agents');
    return agents?.status?.nodes?.map((n) => n.name) ?? null;
  } catch {
    return null;
  }
}

/**
 * The replicas the running controller's proxy routes reads over (GET /services: the topology it
 * follows), all groups together; 'no proxy' when it runs none (nothing to wait for then), null
 * when the controller does not answer.
 */
async function proxyReplicas(c: {
  http: { host: string; port: number };
}): Promise<string[] | 'no proxy' | null> {
  try {
    const res = await fetch(`${url(c.http.host, c.http.port)}/services`, {
      signal: AbortSignal.timeout(2000),
    });
    const body = (await res.json()) as {
      services?: { name: string; status?: { running?: boolean; topology?: { replicas?: string[][] } } }[];
    };
    const proxy = body.services?.find((x) => x.name === 'proxy');
    if (!proxy?.status?.running) return 'no proxy';
    return proxy.status.topology?.replicas?.flat() ?? null;
  } catch {
    return null;
  }
}

/**
 * Signals the running controller (if any) to re-read the nodes and waits until `done` holds;
 * returns false when no controller runs.
 */
export async function tellController(
  cluster: Cluster,
  what: string,
  done: (c: ControllerInfo) => Promise<boolean>,
): Promise<boolean> {
  const c = liveController(cluster.dataDir);
  if (!c) return false;
  process.kill(c.pid, MEMBERS_SIGNAL);
  const deadline = Date.now() + CONTROLLER_WAIT_MS;
  while (!(await done(c))) {
    if (Date.now() > deadline) {
      throw new ClusterError(
        ErrorCodes.TIMEOUT,
        `the controller (pid ${c.pid}) did not take in ${what} within ${CONTROLLER_WAIT_MS / 1000} s; see its log`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

export const addHelp = `Usage: pgscale add-replica [-c FILE] [--group N] [--name NAME] [--port P]
       pgscale add-replica [-c FILE] --host HOST [--group N] [--name NAME] [--port P] [--wait S]

Adds a streaming standby to group N (default 0) while the cluster runs: clones it from the
group's primary, starts it, waits until it streams, and records it in pgscale.yaml.

With --host, on a cluster of several hosts (ha.store: etcd, run by \`pgscale agent\`), from any
machine that reaches etcd: the node is recorded in etcd, the agent of HOST (one must run there,
\`--spare\` on a host with no node yet) clones it from the group's leader over the network, and
the command waits (up to S seconds, default ${STORE_ADD_WAIT_S}) until it streams and is in the
read set of the proxies. See docs/multi-host.md.
`;

export const removeHelp = `Usage: pgscale remove-replica [-c FILE] [--wait S] NODE

Stops standby NODE, drops its replication slot on the primary, deletes its data directory and
removes it from pgscale.yaml. The primary cannot be removed.

On a cluster of several hosts (run by \`pgscale agent\`), for a node added with
\`add-replica --host\`: its record in etcd goes, the proxies stop reading from it, and its host's
agent stops it, drops its slot and deletes its data directory (waited for up to S seconds).
`;

export async function add(argv: string[]): Promise<number> {
  const { values } = parse('add-replica', argv, {
    group: { type: 'string' },
    shard: { type: 'string' },
    name: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    wait: { type: 'string' },
  });
  if (values.help) return (out(addHelp), 0);
  const before = openCluster(values);
  if (typeof values.host === 'string')
    return addReplicaOnHost(before, {
      host: values.host,
      group: renamedOption(values, 'group', 'shard'),
      ...(typeof values.name === 'string' ? { name: values.name } : {}),
      port: values.port,
      waitS: intOption('wait', values.wait, 1, 86_400) ?? STORE_ADD_WAIT_S,
    });
  if (values.wait !== undefined) throw new UsageError('--wait goes with --host');
  const { config, file } = before.loaded;
  const group = intOption('group', renamedOption(values, 'group', 'shard'), 0, config.groups.length - 1) ?? 0;
  const nodes = allNodes(config);
  const groupNodes = nodes.filter((n) => n.group === group);
  let name = typeof values.name === 'string' ? values.name : '';
  if (!name) {
    for (let i = groupNodes.length; ; i++) {
      if (!findNode(config, nodeNameFor(group, i))) {
        name = nodeNameFor(group, i);
        break;
      }
    }
  }
  let port = intOption('port', values.port, 1, 65535);
  if (port === undefined) {
    // Also skip the agents' api ports, the new node's own default one (the next position) included.
    const used = new Set([
      ...nodes.flatMap((n) => [n.port, n.apiPort]),
      config.proxy.port,
      config.http.port,
      defaultApiPort(config, nodes.length),
    ]);
    port = Math.max(...nodes.map((n) => n.port)) + 1;
    while (used.has(port) || (await portInUse(port, groupNodes[0]!.host))) port++;
  }
  const text = readFileSync(file, 'utf8');
  const next = addNodeToText(text, group, { name, host: groupNodes[0]!.host, port });
  const loaded = parseConfig(next, file); // validates the name and port against the rest
  const cluster = new Cluster(loaded, progress, before.bins);
  const node = findNode(loaded.config, name)!;
  writeFileSync(file, next);
  try {
    await cluster.addReplica(node);
  } catch (e) {
    writeFileSync(file, text);
    throw e;
  }
  out(`added ${name} to group ${group} on port ${port} (recorded in ${file})`);
  // Its health endpoint says "replica" once the controller supervises it; the proxy (if the
  // controller runs one) routes reads over it once HA's next cycle has seen it streaming.
  let proxied = true;
  const told = await tellController(cluster, name, async (c) => {
    if ((await supervised(c))?.includes(name) !== true) return false;
    if ((await agentStatus(cluster, node, '/replica')) !== 200) return false;
    const replicas = await proxyReplicas(c);
    proxied = replicas !== 'no proxy';
    return replicas === 'no proxy' || replicas?.includes(name) === true;
  });
  if (told)
    out(
      `the controller supervises ${name}: health endpoints on port ${node.apiPort}` +
        (proxied ? `, in the proxy's read set` : ''),
    );
  return 0;
}

export async function remove(argv: string[]): Promise<number> {
  const { values, positionals } = parse('remove-replica', argv, { wait: { type: 'string' } }, 1);
  if (values.help) return (out(removeHelp), 0);
  const name = positionals[0];
  if (!name) throw new UsageError('name the node to remove (see pgscale status)');
  const cluster = openCluster(values);
  if (storeMode(cluster))
    return removeOnHost(cluster, name, intOption('wait', values.wait, 1, 86_400) ?? STORE_ADD_WAIT_S);
  if (values.wait !== undefined) throw new UsageError('--wait goes with a cluster of several hosts');
  const node = findNode(cluster.config, name);
  if (!node)
    throw new ClusterError(ErrorCodes.NODE_NOT_FOUND, `no node named "${name}" in ${cluster.loaded.file}`);
  const text = readFileSync(cluster.loaded.file, 'utf8');
  const next = removeNodeFromText(text, name);
  parseConfig(next, cluster.loaded.file);
  if (cluster.primaryOf(node.group)?.name === node.name) {
    throw new ClusterError(
      ErrorCodes.USAGE,
      `${node.name} is the primary of group ${node.group}; switch over to another node before removing it`,
    );
  }
  // The controller lets it go first: high availability would otherwise restart the stopped node.
  writeFileSync(cluster.loaded.file, next);
  try {
    if (
      await tellController(cluster, `the removal of ${name}`, async (c) => {
        // Out of the proxy's read set too before it stops: no read goes to a stopping node.
        if ((await supervised(c))?.includes(name) !== false) return false;
        const replicas = await proxyReplicas(c);
        return replicas === 'no proxy' || (replicas !== null && !replicas.includes(name));
      })
    ) {
      out(`the controller no longer supervises ${name}`);
    }
    await cluster.removeReplica(node);
  } catch (e) {
    writeFileSync(cluster.loaded.file, text);
    await tellController(cluster, `${name} again`, () => Promise.resolve(true)).catch(() => false);
    throw e;
  }
  // synchronous_standby_names must stop naming it.
  await new Cluster(loadConfig(cluster.loaded.file), progress, cluster.bins).refreshConf(node.group);
  out(`removed ${name} from group ${node.group}`);
  return 0;
}
