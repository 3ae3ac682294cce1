/**
 * The checks before a cluster or a new group is brought up (Cluster.preflight, preflightGroup):
 * everything that can be known before acting — the data directories are ours or empty, the
 * binaries match the data, the ports are free — reported together, nothing touched.
 */
import { existsSync, readdirSync } from 'node:fs';
import { ClusterError, ErrorCodes } from '../errors.js';
import type { Cluster } from './cluster.js';
import { dataMajorVersion, isEmptyOrMissing, readMarker, runningPid } from './instance.js';
import { portInUse } from './ports.js';
import { serviceCanReach, serviceUser } from './run-as.js';

/**
 * What in a data directory without cluster.json pgscale did not put there. The cluster CA and the
 * TLS directory come before the cluster (`init --tls`, a proxy certificate from the CA).
 */
export function foreignEntries(dataDir: string): string[] {
  const ours = ['nodes', 'logs', 'archive', 'secrets', 'bin', 'secrets.json', 'ca', 'tls'];
  return readdirSync(dataDir).filter((n) => !ours.includes(n));
}

/** Everything that can be known before acting; throws naming the first problems found. */
export async function preflightCluster(c: Cluster): Promise<void> {
  const problems: string[] = [];
  if (c.config.groups.length === 0) {
    throw new ClusterError(
      ErrorCodes.CONFIG_INVALID,
      `${c.loaded.file} names no groups: nothing to run (see pgscale init)`,
    );
  }
  const id = c.identity();
  if (existsSync(c.dataDir) && !id && !isEmptyOrMissing(c.dataDir)) {
    const foreign = foreignEntries(c.dataDir);
    if (foreign.length > 0) {
      throw new ClusterError(
        ErrorCodes.DATADIR_FOREIGN,
        `data directory ${c.dataDir} is not empty and is not a pgscale cluster's (found: ${foreign.slice(0, 5).join(', ')}); ` +
          'choose another cluster.data_dir or empty it',
      );
    }
  }
  if (serviceUser() && existsSync(c.dataDir) && !serviceCanReach(c.dataDir)) {
    throw new ClusterError(
      ErrorCodes.DATADIR_UNREACHABLE,
      `running as root, PostgreSQL runs as user "${serviceUser()!.name}", which cannot enter ${c.dataDir} ` +
        '(a parent directory is not searchable by others). Set cluster.data_dir to a directory it can reach, ' +
        'such as /var/lib/pgscale/<name>, or run pgscale as an ordinary user.',
    );
  }
  for (const n of c.nodes()) {
    const { pgdata } = c.paths(n.name);
    if (!isEmptyOrMissing(pgdata)) {
      const m = readMarker(pgdata);
      if (!m || (id && m.cluster_id !== id.id) || m.node !== n.name) {
        problems.push(
          `data directory ${pgdata} of node ${n.name} belongs to ${m ? `another cluster or node (${m.cluster}/${m.node})` : 'something else (no pgscale marker)'}; ` +
            'remove it or choose another cluster.data_dir',
        );
        continue;
      }
      const major = dataMajorVersion(pgdata);
      if (major !== null && major !== c.bins.major) {
        problems.push(
          `node ${n.name} holds PostgreSQL ${major} data but the binaries found are ${c.bins.version} (${c.bins.dir}); ` +
            `point postgres.bin_dir or PGSCALE_PG_BIN at PostgreSQL ${major}`,
        );
      }
    }
    if (runningPid(pgdata) === null && (await portInUse(n.port, n.host))) {
      problems.push(`port ${n.port} of node ${n.name} (${n.host}) is already in use by another process`);
    }
  }
  if (problems.length > 0) {
    throw new ClusterError(
      problems.some((p) => p.includes('port')) && !problems.some((p) => p.includes('data directory'))
        ? ErrorCodes.PORT_IN_USE
        : ErrorCodes.DATADIR_FOREIGN,
      problems.join('\n'),
    );
  }
  for (let group = 0; group < c.config.groups.length; group++) c.primaryOf(group);
}

/**
 * What must hold before a new group is provisioned (nothing is touched): it is the last group,
 * its data directories are empty or missing and its ports free.
 */
export async function preflightNewGroup(c: Cluster, group: number): Promise<void> {
  if (group !== c.config.groups.length - 1) {
    throw new ClusterError(ErrorCodes.USAGE, `group ${group} is not the last group of ${c.loaded.file}`);
  }
  const problems: string[] = [];
  for (const n of c.nodes().filter((x) => x.group === group)) {
    const { pgdata } = c.paths(n.name);
    if (!isEmptyOrMissing(pgdata)) problems.push(`data directory ${pgdata} of ${n.name} is not empty`);
    if (await portInUse(n.port, n.host)) problems.push(`port ${n.port} of ${n.name} is already in use`);
  }
  // A new primary's WAL segments have the names an old group's had: its archive must be empty.
  if (!isEmptyOrMissing(c.archiveDir(group))) {
    problems.push(`WAL archive ${c.archiveDir(group)} of an earlier group ${group} is not empty`);
  }
  if (problems.length > 0) {
    throw new ClusterError(
      problems.some((p) => p.includes('data directory'))
        ? ErrorCodes.DATADIR_FOREIGN
        : ErrorCodes.PORT_IN_USE,
      problems.join('\n'),
    );
  }
}
