/**
 * `pgscale add-replica` and `remove-replica`: change a shard's standbys online. The node is
 * written into (or removed from) pgscale.yaml with its comments kept, so the file stays the
 * source of truth; a failed provisioning takes the node back out.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { allNodes, defaultApiPort, findNode, loadConfig, parseConfig } from '../../config/load.js';
import { addNodeToText, nodeNameFor, removeNodeFromText } from '../../config/template.js';
import { ClusterError, ErrorCodes, UsageError } from '../../errors.js';
import { Cluster } from '../../cluster/cluster.js';
import { portInUse } from '../../cluster/ports.js';
import { intOption, parse } from '../args.js';
import { openCluster, out, progress } from '../context.js';

export const addHelp = `Usage: pgscale add-replica [-c FILE] [--shard N] [--name NAME] [--port P]

Adds a streaming standby to shard N (default 0) while the cluster runs: clones it from the
shard's primary, starts it, waits until it streams, and records it in pgscale.yaml.
`;

export const removeHelp = `Usage: pgscale remove-replica [-c FILE] NODE

Stops standby NODE, drops its replication slot on the primary, deletes its data directory and
removes it from pgscale.yaml. The primary cannot be removed.
`;

export async function add(argv: string[]): Promise<number> {
  const { values } = parse('add-replica', argv, {
    shard: { type: 'string' },
    name: { type: 'string' },
    port: { type: 'string' },
  });
  if (values.help) return (out(addHelp), 0);
  const before = openCluster(values);
  const { config, file } = before.loaded;
  const shard = intOption('shard', values.shard, 0, config.shards.length - 1) ?? 0;
  const nodes = allNodes(config);
  const shardNodes = nodes.filter((n) => n.shard === shard);
  let name = typeof values.name === 'string' ? values.name : '';
  if (!name) {
    for (let i = shardNodes.length; ; i++) {
      if (!findNode(config, nodeNameFor(shard, i))) {
        name = nodeNameFor(shard, i);
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
    while (used.has(port) || (await portInUse(port, shardNodes[0]!.host))) port++;
  }
  const text = readFileSync(file, 'utf8');
  const next = addNodeToText(text, shard, { name, host: shardNodes[0]!.host, port });
  const loaded = parseConfig(next, file); // validates the name and port against the rest
  const cluster = new Cluster(loaded, progress, before.bins);
  writeFileSync(file, next);
  try {
    await cluster.addReplica(findNode(loaded.config, name)!);
  } catch (e) {
    writeFileSync(file, text);
    throw e;
  }
  out(`added ${name} to shard ${shard} on port ${port} (recorded in ${file})`);
  return 0;
}

export async function remove(argv: string[]): Promise<number> {
  const { values, positionals } = parse('remove-replica', argv, {}, 1);
  if (values.help) return (out(removeHelp), 0);
  const name = positionals[0];
  if (!name) throw new UsageError('name the node to remove (see pgscale status)');
  const cluster = openCluster(values);
  const node = findNode(cluster.config, name);
  if (!node)
    throw new ClusterError(ErrorCodes.NODE_NOT_FOUND, `no node named "${name}" in ${cluster.loaded.file}`);
  const text = readFileSync(cluster.loaded.file, 'utf8');
  const next = removeNodeFromText(text, name);
  parseConfig(next, cluster.loaded.file);
  await cluster.removeReplica(node);
  writeFileSync(cluster.loaded.file, next);
  // synchronous_standby_names must stop naming it.
  await new Cluster(loadConfig(cluster.loaded.file), progress, cluster.bins).refreshConf(node.shard);
  out(`removed ${name} from shard ${node.shard}`);
  return 0;
}
