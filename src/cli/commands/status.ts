/** `pgscale status [--json]`: every node's role, state, positions, lag, slot and archiver. */
import type { Cluster } from '../../cluster/cluster.js';
import { liveController } from '../../controller/controller-file.js';
import { url } from '../../web/http-api.js';
import { statusReport } from '../../web/status-report.js';
import { withShardAliases } from '../../web/json-aliases.js';
import { proxyStatusLine } from '../proxy-status.js';
import { parse } from '../args.js';
import { openCluster, out } from '../context.js';
import { formatBytes, table } from '../table.js';

export const help = `Usage: pgscale status [-c FILE] [--json]

Shows each node: group, name, role, state, pid, port, timeline, WAL position (current on a
primary, replayed on a replica), lag in bytes and seconds, replication slot and archiving, and
the controller (pid, HTTP API) when one runs. Works with or without a running controller.
--json prints the same as an object for scripts (shape in docs/status.md).
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('status', argv, { json: { type: 'boolean' } });
  if (values.help) return (out(help), 0);
  const cluster = openCluster(values);
  return printStatus(cluster, values.json === true);
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
        ['GROUP', 'NODE', 'ROLE', 'STATE', 'PID', 'PORT', 'TL', 'LSN', 'LAG', 'LAG(s)', 'SLOT', 'ARCHIVE'],
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
            ? n.archive.failedCount > 0 && n.archive.lastFailedWal
              ? `FAILING ${n.archive.lastFailedWal} (${n.archive.failedCount} failures)`
              : (n.archive.lastArchivedWal ?? (n.role === 'primary' ? 'none yet' : null))
            : null,
        ]),
      ),
    );
    for (const n of nodes.filter((x) => x.error)) out(`${n.name}: ${n.error}`);
    out(
      controller
        ? `controller: pid ${controller.pid} since ${controller.started_at}, HTTP API ${url(controller.http.host, controller.http.port)}`
        : 'controller: not running (`pgscale up` starts it)',
    );
    if (proxy) out(proxy.line);
  }
  const bad =
    nodes.some((n) => n.state !== 'running' || (n.role === 'replica' && !n.streaming)) || proxy?.bad === true;
  return bad ? 3 : 0;
}
