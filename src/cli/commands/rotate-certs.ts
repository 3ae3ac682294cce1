/**
 * `pgscale rotate-certs [--all] [--days N] [--json]`: issues again the certificates of this
 * host's nodes (and the proxy's, with proxy.tls.cluster_ca) that expire within N days, or all of
 * them, and makes the running nodes and the controller's proxy load them without dropping a
 * connection (src/cluster/tls-rotate.ts). Exit 1 when a running server did not take its new
 * certificate.
 */
import { rotateCertificates } from '../../cluster/tls-rotate.js';
import type { RotatedCertificate } from '../../cluster/tls-rotate.js';
import { RENEW_DAYS } from '../../cluster/tls.js';
import type { Cluster } from '../../cluster/cluster.js';
import { liveController } from '../../controller/controller-file.js';
import { UsageError } from '../../errors.js';
import { intOption, parse } from '../args.js';
import { openCluster, out } from '../context.js';
import { table } from '../table.js';

export const help = `Usage: pgscale rotate-certs [-c FILE] [--all] [--days N] [--json]

Issues again, from the cluster CA, the TLS certificates of this host's nodes that expire within
N days (default ${RENEW_DAYS}) — every one with --all — and the proxy's when proxy.tls.cluster_ca
is set; with cluster.tls.node_cert_dir it copies your files from there again. Each new pair
replaces the old one atomically; each running node loads it with pg_reload_conf(), and a running
controller's proxy with a reload (SIGHUP): open connections keep their TLS session, new ones get
the new certificate. Nodes that are stopped load theirs when they start.

Options:
  --all      renew every certificate, whatever its expiry
  --days N   renew those expiring within N days (default ${RENEW_DAYS})
  --json     print the result as JSON (certificates[]: what, file, renewed, before, after, loaded)

Exit status: 0 when every renewed certificate is served (or its server is stopped), 1 otherwise.
`;

/** SIGHUP to this cluster's controller, which reloads its services (the proxy among them). */
export function signalController(cluster: Cluster): boolean {
  const c = liveController(cluster.dataDir);
  if (!c || !cluster.config.proxy.enabled) return false;
  process.kill(c.pid, 'SIGHUP');
  return true;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('rotate-certs', argv, {
    all: { type: 'boolean' },
    days: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) return (out(help), 0);
  const days = intOption('days', values.days, 0, 3650);
  if (days !== undefined && values.all === true)
    throw new UsageError('--all renews every certificate: give --all or --days, not both');
  const json = values.json === true;
  const cluster = openCluster(values, { step: () => undefined });
  const result = await rotateCertificates(cluster, {
    all: values.all === true,
    ...(days !== undefined ? { withinDays: days } : {}),
    reloadProxy: () => signalController(cluster),
    ...(json ? {} : { log: (l: string) => out(`  ${l}`) }),
  });
  if (json) out(JSON.stringify({ certificates: result }, null, 2));
  else printResult(result);
  return result.some((r) => r.loaded === 'failed') ? 1 : 0;
}

function printResult(result: readonly RotatedCertificate[]): void {
  out(
    table(
      ['CERTIFICATE', 'RENEWED', 'VALID TO', 'LOADED'],
      result.map((r) => [r.what, r.renewed ? 'yes' : 'no', r.after.validTo, r.loaded]),
    ),
  );
  for (const r of result) if (r.error) out(`${r.what}: ${r.error}`);
}
