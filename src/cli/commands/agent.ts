/**
 * `pgscale agent`: the process that runs on each database host of a cluster spread over several
 * hosts (src/cli/agent-run.ts). In the foreground, JSON logs on stderr (systemd's journal);
 * SIGINT/SIGTERM stop it, and its nodes with it; SIGHUP reloads (agent-reload.ts).
 */
import { networkInterfaces } from 'node:os';
import { Cluster } from '../../cluster/cluster.js';
import { loadConfig, defaultConfigPath } from '../../config/load.js';
import { UsageError, errorMessage } from '../../errors.js';
import { childLogger, createLogger } from '../../obs/logger.js';
import { parse } from '../args.js';
import { Agent } from '../agent-run.js';
import { out, warnOnce } from '../context.js';

export const help = `Usage: pgscale agent -c FILE [--host HOST] [--data-dir DIR] [--keep-nodes] [--spare]

Runs this host's part of a cluster spread over several hosts (ha.store: etcd): the PostgreSQL
nodes of FILE whose host is HOST — created or cloned when missing, reported to etcd, restarted,
rewound and promoted as the cluster's decider asks — and, when this agent is the decider, the
decide loop for every group. A primary on this host stops accepting writes when the agent cannot
renew its session in etcd for a TTL (ha.ttl). SIGINT or SIGTERM stop the agent and its nodes;
SIGHUP reads FILE again and applies its PostgreSQL settings to this host's nodes.
See docs/multi-host.md.

Options:
  -c, --config FILE  the cluster's configuration (the same file on every host)
  --host HOST        this host as the nodes' host fields name it (default: the one that is an
                     address of this machine)
  --data-dir DIR     this host's data directory (default: cluster.data_dir of FILE)
  --keep-nodes       leave the nodes running when the agent stops
  --spare            run on a host that has no node yet (with --host): it takes the nodes that
                     \`pgscale add-replica --host\` or \`add-group --hosts\` put there
`;

/** The nodes' host that is an address of this machine (or its name): exactly one, else an error. */
export function localHost(hosts: readonly string[]): string {
  const mine = new Set<string>();
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (!a.internal) mine.add(a.address);
  const found = [...new Set(hosts)].filter((h) => mine.has(h));
  if (found.length === 1) return found[0]!;
  throw new UsageError(
    found.length === 0
      ? `none of the nodes' hosts (${[...new Set(hosts)].join(', ')}) is an address of this machine; name it with --host`
      : `several nodes' hosts are addresses of this machine (${found.join(', ')}); name one with --host`,
  );
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('agent', argv, {
    host: { type: 'string' },
    'data-dir': { type: 'string' },
    'keep-nodes': { type: 'boolean' },
    spare: { type: 'boolean' },
  });
  if (values.help) return (out(help), 0);
  const file = typeof values.config === 'string' ? values.config : defaultConfigPath();
  let loaded = warnOnce(loadConfig(file));
  if (typeof values['data-dir'] === 'string') loaded = { ...loaded, dataDir: values['data-dir'] };
  const logger = createLogger({ base: { cluster: loaded.config.cluster.name } });
  const log = childLogger(logger, { component: 'agent' });
  const cluster = new Cluster(loaded, { step: (m) => log.info(m) });
  const host = typeof values.host === 'string' ? values.host : localHost(cluster.nodes().map((n) => n.host));
  const agent = new Agent(cluster, { host, spare: values.spare === true }, log);
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((r) => (finish = r));
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, `${sig}: stopping`);
    agent.stop({ stopNodes: values['keep-nodes'] !== true }).then(
      () => finish(0),
      (e: unknown) => {
        log.error({ err: e }, `stopping failed: ${errorMessage(e)}`);
        finish(1);
      },
    );
  };
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, onSignal);
  // SIGHUP (systemd's ExecReload) reloads; without a handler Node would exit on it.
  let reloading = Promise.resolve();
  const onHangup = () => {
    log.info('SIGHUP: reloading the configuration');
    reloading = reloading.then(() =>
      agent.reload().catch((e: unknown) => log.error(`reload failed: ${errorMessage(e)}`)),
    );
  };
  process.on('SIGHUP', onHangup);
  try {
    await agent.start();
  } catch (e) {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, onSignal);
    process.off('SIGHUP', onHangup);
    await agent.stop({ stopNodes: false }).catch(() => undefined);
    throw e;
  }
  const code = await finished;
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, onSignal);
  process.off('SIGHUP', onHangup);
  return code;
}
