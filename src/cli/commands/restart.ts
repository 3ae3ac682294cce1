/**
 * `pgscale restart` and `reinit`: asked of the running controller (src/controller/
 * rolling-restart.ts), which restarts nodes one at a time — the standbys first, then a
 * switchover — or rebuilds a standby from its primary, and records each step in the history.
 */
import type { RestartResult } from '../../controller/rolling-restart.js';
import { UsageError } from '../../errors.js';
import { intOption, parse, renamedOption } from '../args.js';
import type { Options } from '../args.js';
import { openCluster, out } from '../context.js';
import { controllerCall } from '../controller-api.js';

export const restartHelp = `Usage: pgscale restart [-c FILE] [NODE | --pending] [--group N] [--json]

Rolling restart without stopping writes for more than a switchover pause: in each group (or
group N, or NODE's group) the standbys restart first, one at a time, each waited for until it
streams again; then, when the primary is to restart too, a switchover hands its role to a
restarted standby and the former primary comes back as a standby. A group with no standby (or a
cluster without high availability) restarts its primary in place, with a warning: writes stop
until it is back.

  NODE       restart only this node (the primary: by a switchover when it has a standby)
  --pending  restart only the nodes with settings pending restart (see \`pgscale status\`)
  --group N  only group N
`;

export const reinitHelp = `Usage: pgscale reinit [-c FILE] NODE [--json]

Rebuilds standby NODE from its group's current primary: stops it, deletes its data directory,
clones it again (pg_basebackup) and starts it, then waits until it streams. For a standby whose
data is damaged or that cannot follow its primary any more. Refused on the primary: switch over
first.
`;

function print(body: Record<string, unknown>): void {
  const r = body as unknown as RestartResult;
  for (const s of r.steps) out(s);
  for (const w of r.warnings) out(`warning: ${w}`);
}

async function call(what: 'restart' | 'reinit', argv: string[]): Promise<number> {
  const opts: Options =
    what === 'restart'
      ? { pending: { type: 'boolean' }, group: { type: 'string' }, shard: { type: 'string' } }
      : {};
  const { values, positionals } = parse(what, argv, { ...opts, json: { type: 'boolean' } }, 1);
  if (values.help) return (out(what === 'restart' ? restartHelp : reinitHelp), 0);
  const cluster = openCluster(values);
  const node = positionals[0];
  if (node !== undefined && !cluster.nodes().some((n) => n.name === node))
    throw new UsageError(`no node named "${node}" in ${cluster.loaded.file} (see pgscale status)`);
  let body: Record<string, unknown>;
  if (what === 'reinit') {
    if (node === undefined) throw new UsageError('name the standby to rebuild (see pgscale status)');
    body = { node };
  } else {
    if (node !== undefined && values.pending) throw new UsageError('name a node or --pending, not both');
    const group = intOption(
      'group',
      renamedOption(values, 'group', 'shard'),
      0,
      cluster.config.groups.length - 1,
    );
    body = {
      ...(node ? { node } : {}),
      ...(group !== undefined ? { group } : {}),
      ...(values.pending ? { pending: true } : {}),
    };
  }
  // A clone of a large standby, or many nodes restarted one at a time, takes long.
  const r = await controllerCall(
    cluster,
    'POST',
    `/config/${what}`,
    body,
    `${what} (it is an older version)`,
    12 * 3600_000,
  );
  if (values.json) out(JSON.stringify(r.body, null, 2));
  else if (r.status === 200) print(r.body);
  else out(`${what} not done: ${String(r.body.error)}`);
  return r.status === 200 ? 0 : 1;
}

export function restart(argv: string[]): Promise<number> {
  return call('restart', argv);
}

export function reinit(argv: string[]): Promise<number> {
  return call('reinit', argv);
}
