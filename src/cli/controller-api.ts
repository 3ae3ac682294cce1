/**
 * Calls of the running controller's HTTP API from the CLI (the changing ones with the token it
 * keeps in <data_dir>/api-token, readable only by its owner): high availability's commands and
 * the shard moves'.
 */
import type { Cluster } from '../cluster/cluster.js';
import { liveController, readApiToken } from '../controller/controller-file.js';
import { ClusterError, ErrorCodes } from '../errors.js';
import { url } from '../web/http-api.js';

export async function controllerCall(
  cluster: Cluster,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  /** What a 404 means the controller does not run. */
  missing = 'this',
  /** How long to wait for the answer (a rebuild of a large standby takes long). */
  timeoutMs = 180_000,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const c = liveController(cluster.dataDir);
  if (!c) {
    throw new ClusterError(
      ErrorCodes.USAGE,
      `no controller runs for cluster "${cluster.config.cluster.name}"; start it with \`pgscale up\``,
    );
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (method !== 'GET') {
    const token = readApiToken(cluster.dataDir);
    if (!token) {
      throw new ClusterError(
        ErrorCodes.USAGE,
        `cannot read the controller's token in ${cluster.dataDir}/api-token (run this as the user who started the cluster)`,
      );
    }
    headers.authorization = `Bearer ${token}`;
  }
  const base = url(c.http.host, c.http.port);
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new ClusterError(
      ErrorCodes.INTERNAL,
      `cannot reach the controller at ${base}: ${(e as Error).message}`,
    );
  }
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { error: text };
  }
  if (res.status === 404) {
    throw new ClusterError(ErrorCodes.USAGE, `the controller at ${base} does not run ${missing}`);
  }
  return { status: res.status, body: parsed };
}
