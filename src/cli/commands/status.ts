/**
 * `pgscale status [--json]`: every node's role, state, positions, lag, slot and archiver; for a
 * cluster of several hosts (nodes on several hosts, ha.store etcd) what the state store says, with
 * the standbys' lag when this machine has the superuser password (src/cli/store-status.ts).
 */
import type { Cluster } from '../../cluster/cluster.js';
import { readSecrets } from '../../cluster/secrets.js';
import { liveController } from '../../controller/controller-file.js';
import { url } from '../../web/http-api.js';
import { statusReport } from '../../web/status-report.js';
import { withShardAliases } from '../../web/json-aliases.js';
import { proxyStatusLine } from '../proxy-status.js';
import { parse } from '../args.js';
import { openCluster, out } from '../context.js';
import { formatBytes, table } from '../table.js';
import { archiveFailing } from '../../web/cluster-metrics.js';
import { probeLag, proxiesLine, readStoreKeys, storeStatus } from '../store-status.js';
import { storeMode, takeInStoredNodes, withStore } from './ha.js';

export const help = `Usage: pgscale status [-c FILE] [--data-dir DIR] [--json]

Shows each node: group, name, role, state, pid, port, timeline, WAL position (current on a
primary, replayed on a replica), lag in bytes and seconds, replication slot and archiving, and
the controller (pid, HTTP API) when one runs. Works with or without a running controller.
--json prints the same as an object for scripts (shape in docs/status.md).

A cluster of several hosts (nodes on several hosts, ha.store: etcd, run by \`pgscale agent\`)
is shown from etcd: the agents, the decider, each group's leader and epoch, and each
node's state as its agent reports it; the standbys' lag too when DIR (default: cluster.data_dir)
holds the cluster's secrets.json. See docs/ha.md.
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('status', argv, { json: { type: 'boolean' }, 'data-dir': { type: 'string' } });
  if (values.help) return (out(help), 0);
  const cluster = openCluster(values);
  if (storeMode(cluster)) {
    const dir = typeof values['data-dir'] === 'string' ? values['data-dir'] : cluster.dataDir;
    return printStoreStatus(cluster, dir, values.json === true);
  }
  return printStatus(cluster, values.json === true);
}

/** Status from the state store (several hosts); exit 3 when something needs attention. */
async function printStoreStatus(cluster: Cluster, dataDir: string, json: boolean): Promise<number> {
  const s = await withStore(cluster, async (store) => {
    await takeInStoredNodes(cluster, store); // add-replica --host, add-group --hosts
    return storeStatus(
      { cluster: cluster.config.cluster.name, store: store.describe },
      cluster.nodes(),
      await readStoreKeys(store, cluster.config.groups.length),
    );
  });
  const nodes = cluster.nodes();
  const secrets = readSecrets(dataDir);
  const errors = secrets
    ? await probeLag(s, nodes, (n) => ({
        host: n.host,
        port: n.port,
        user: cluster.config.postgres.superuser,
        password: secrets.superuser,
      }))
    : [];
  if (!secrets) s.probed = `no secrets.json in ${dataDir} (--data-dir names the directory that has it)`;
  if (json) out(JSON.stringify({ ...s, errors }, null, 2));
  else {
    out(
      table(
        ['GROUP', 'NODE', 'HOST', 'PORT', 'ROLE', 'STATE', 'UPSTREAM', 'LAG', 'LAG(s)'],
        s.nodes.map((n) => [
          n.group,
          n.name,
          n.host + (n.agent ? '' : ' (no agent)'),
          n.port,
          n.role,
          n.role === 'replica' && n.state === 'running' && n.streaming !== null
            ? n.streaming
              ? 'streaming'
              : 'not streaming'
            : n.state,
          n.upstream,
          formatBytes(n.lagBytes),
          n.lagSeconds === null ? null : n.lagSeconds.toFixed(1),
        ]),
      ),
    );
    for (const g of s.groups)
      out(`group ${g.group}: leader ${g.leader ?? 'none'}${g.epoch === null ? '' : `, epoch ${g.epoch}`}`);
    out(
      `agents: ${s.agents.length === 0 ? 'none' : s.agents.map((a) => `${a.host} (pid ${a.pid} since ${a.started_at})`).join(', ')}`,
    );
    out(`decider: ${s.decider === null ? 'none' : `agent of ${s.decider}`}`);
    out(`proxies: ${proxiesLine(s.proxies)}`);
    if (s.paused) out('automatic failover: PAUSED (`pgscale resume-ha` resumes it)');
    if (s.probed !== true) out(`lag: not shown (${s.probed})`);
    for (const e of errors) out(e);
    out(`store: ${s.store}`);
  }
  const bad =
    s.decider === null ||
    s.groups.some((g) => g.leader === null) ||
    s.nodes.some((n) => n.state !== 'running' || (n.role === 'replica' && n.streaming === false));
  return bad ? 3 : 0;
}

export async function printStatus(cluster: Cluster, json: boolean): Promise<number> {
  const report = await statusReport(cluster, liveController(cluster.dataDir));
  const { nodes, controller } = report;
  const proxy = json ? null : await proxyStatusLine(controller);
  if (json) {
    out(JSON.stringify(withShardAliases(report), null, 2));
  } else {
    out(
      table(
        [
          'GROUP',
          'NODE',
          'ROLE',
          'STATE',
          'PID',
          'PORT',
          'TL',
          'LSN',
          'LAG',
          'LAG(s)',
          'SLOT',
          'ARCHIVE',
          'PENDING RESTART',
        ],
        nodes.map((n) => [
          n.group,
          n.name,
          n.role,
          n.role === 'replica' && n.state === 'running'
            ? n.streaming
              ? 'streaming'
              : 'not streaming'
            : n.state,
          n.pid,
          n.port,
          n.timeline,
          n.lsn,
          formatBytes(n.lagBytes),
          n.lagSeconds === null ? null : n.lagSeconds.toFixed(1),
          n.slot ? `${n.slot.name}${n.slot.active ? '' : ' (inactive)'}` : null,
          n.archive
            ? archiveFailing(n.archive)
              ? `FAILING ${n.archive.lastFailedWal} (${n.archive.failedCount} failures)`
              : (n.archive.lastArchivedWal ?? (n.role === 'primary' ? 'none yet' : null))
            : null,
          n.pendingRestart.length ? `* ${n.pendingRestart.join(', ')}` : null,
        ]),
      ),
    );
    for (const n of nodes.filter((x) => x.error)) out(`${n.name}: ${n.error}`);
    if (nodes.some((n) => n.pendingRestart.length > 0))
      out(
        'pending restart: settings that take effect at a restart (`pgscale restart --pending` applies them)',
      );
    out(
      controller
        ? `controller: pid ${controller.pid} since ${controller.started_at}, HTTP API ${url(controller.http.host, controller.http.port)}`
        : 'controller: not running (`pgscale up` starts it)',
    );
    if (proxy) out(proxy.line);
  }
  const bad =
    nodes.some(
      (n) =>
        n.state !== 'running' ||
        (n.role === 'replica' && !n.streaming) ||
        (n.archive !== null && archiveFailing(n.archive)),
    ) || proxy?.bad === true;
  return bad ? 3 : 0;
}
