/**
 * Every port a cluster's controller would listen on, checked at once before anything starts:
 * the PostgreSQL nodes (those not already running), the proxy, the HTTP API and each node's
 * health endpoints. All clashes go into one message, so an operator fixes them in one pass
 * instead of meeting them one run at a time.
 */
import { runningPid } from '../cluster/instance.js';
import { portInUse } from '../cluster/ports.js';
import type { Cluster } from '../cluster/cluster.js';
import { ErrorCodes, PgscaleError, errorMessage } from '../errors.js';
import { checkHttpPort } from '../controller/controller.js';
import { checkAgentPort } from '../web/node-agent.js';
import { checkProxyPort } from './proxy-service.js';

/** Throws one PORT_IN_USE error listing every port of the cluster that cannot be bound. */
export async function checkAllPorts(cluster: Cluster): Promise<void> {
  const loaded = cluster.loaded;
  const problems: string[] = [];
  const collect = async (check: () => Promise<void>) => {
    try {
      await check();
    } catch (e) {
      problems.push(errorMessage(e));
    }
  };
  for (const n of cluster.nodes()) {
    if (runningPid(cluster.paths(n.name).pgdata) === null && (await portInUse(n.port, n.host))) {
      problems.push(`port ${n.port} of node ${n.name} (${n.host}) is already in use by another process`);
    }
  }
  await collect(() => checkProxyPort(loaded));
  await collect(() => checkHttpPort(loaded));
  for (const n of cluster.nodes()) {
    await collect(() => checkAgentPort(loaded.config.http.listen, n, loaded.file));
  }
  if (problems.length === 1) throw new PgscaleError(ErrorCodes.PORT_IN_USE, problems[0]!);
  if (problems.length > 1) {
    throw new PgscaleError(
      ErrorCodes.PORT_IN_USE,
      `${problems.length} ports of cluster "${loaded.config.cluster.name}" cannot be used:\n` +
        problems.map((p) => `  - ${p}`).join('\n'),
    );
  }
}
