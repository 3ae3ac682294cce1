/**
 * Shard moves from the command line (issue #17): `pgscale move-shard`, `rebalance` and
 * `drain-group` ask the running controller (POST /sharding/…) to start a job and follow it until
 * it ends, printing each move as it goes (bytes copied, rate, ETA, the write pause of its
 * cutover); `rebalance --status` shows the running job and the history, `rebalance --cancel`
 * stops the running one. Ctrl-C stops following, not the job.
 */
import { ClusterError, ErrorCodes, UsageError } from '../../errors.js';
import type { Cluster } from '../../cluster/cluster.js';
import { parse } from '../args.js';
import { openCluster, out } from '../context.js';
import { controllerCall } from '../controller-api.js';
import type { JobRecord, MoveRecord } from '../sharding-moves.js';
import { table } from '../table.js';

export const moveHelp = `Usage: pgscale move-shard [-c FILE] SHARD_ID --to GROUP [--no-wait] [--json]

Moves shard SHARD_ID (as citus_shards lists it) and the shards colocated with it to group GROUP
while the application runs: copied and streamed with logical replication, then switched over
with a pause of new statements for these shards only (typically well under a second).
`;

export const rebalanceHelp = `Usage: pgscale rebalance [-c FILE] [--by count|size] [--no-wait] [--json]
       pgscale rebalance [-c FILE] --status [--json]
       pgscale rebalance [-c FILE] --cancel

Moves shards until every group holds an even share: by count (default: each table's shards
spread evenly over the groups) or by size (bytes). One job runs at a time. --status shows the
running job with its progress and the recent history; --cancel stops the running job (the move
in progress is undone, those done stay).
`;

export const drainHelp = `Usage: pgscale drain-group [-c FILE] GROUP [--by count|size] [--no-wait] [--json]

Moves every shard off group GROUP to the other groups, so that it can be removed
(pgscale remove-group GROUP).
`;

type Res = Awaited<ReturnType<typeof controllerCall>>;

function check(r: Res): Record<string, unknown> {
  if (r.status >= 400)
    throw new ClusterError(
      ErrorCodes.USAGE,
      typeof r.body.error === 'string' ? r.body.error : `HTTP ${r.status}`,
    );
  return r.body;
}

const call = (cluster: Cluster, method: 'GET' | 'POST', path: string, body?: unknown) =>
  controllerCall(cluster, method, path, body, 'sharding (an older version?)');

function moveLine(m: MoveRecord): string {
  const parts = [`move ${m.id}: shard ${m.shard_id} (${m.table}) group ${m.from} → ${m.to}: ${m.state}`];
  if (m.step && m.state === 'running') parts.push(m.step);
  if (m.copied_bytes !== undefined && m.state === 'running')
    parts.push(
      `${mb(m.copied_bytes)} of ${mb(m.source_bytes ?? 0)} copied, ${mb(m.rate_bytes_per_s ?? 0)}/s, ETA ${m.eta_s ?? '?'} s`,
    );
  if (m.lag_ms !== undefined && m.state === 'running') parts.push(`lag ${m.lag_ms} ms`);
  if (m.pause_ms !== undefined) parts.push(`write pause ${m.pause_ms} ms`);
  if (m.error) parts.push(m.error);
  return parts.join(', ');
}

const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

/** Follows job `id` until it ends; exit code 0 when it is done. */
async function follow(cluster: Cluster, id: string, json: boolean): Promise<number> {
  const printed = new Map<string, string>();
  for (;;) {
    const body = check(await call(cluster, 'GET', '/sharding/moves'));
    const current = body.current as JobRecord | null;
    const job =
      current?.id === id ? current : ((body.history as JobRecord[]).find((j) => j.id === id) ?? null);
    if (!job)
      throw new ClusterError(ErrorCodes.INTERNAL, `job ${id} is not known to the controller any more`);
    if (!json)
      for (const m of job.moves) {
        const line = moveLine(m);
        if (printed.get(m.id) !== line && (m.state !== 'queued' || !printed.has(m.id))) {
          if (m.state !== 'queued') out(line);
          printed.set(m.id, line);
        }
      }
    if (job.state !== 'running') {
      if (json) out(JSON.stringify(job, null, 2));
      else {
        const done = job.moves.filter((m) => m.state === 'done');
        const pauses = done.map((m) => m.pause_ms ?? 0).sort((a, b) => a - b);
        out(
          `${job.kind} job ${job.id}: ${job.state}; ${done.length} of ${job.moves.length} moves done` +
            (pauses.length ? `, write pause per move: max ${pauses[pauses.length - 1]} ms` : '') +
            (job.error ? ` (${job.error})` : ''),
        );
      }
      return job.state === 'done' ? 0 : 1;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function start(
  cluster: Cluster,
  path: string,
  body: unknown,
  wait: boolean,
  json: boolean,
): Promise<number> {
  const r = check(await call(cluster, 'POST', path, body));
  const job = r.job as JobRecord;
  if (!wait) {
    out(
      json
        ? JSON.stringify(job, null, 2)
        : `${job.kind} job ${job.id} started; pgscale rebalance --status follows it`,
    );
    return 0;
  }
  return follow(cluster, job.id, json);
}

function byOption(v: unknown): 'count' | 'size' {
  if (v === undefined) return 'count';
  if (v !== 'count' && v !== 'size') throw new UsageError('--by takes count or size');
  return v;
}

export async function moveShard(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'move-shard',
    argv,
    { to: { type: 'string' }, 'no-wait': { type: 'boolean' }, json: { type: 'boolean' } },
    1,
  );
  if (values.help) return (out(moveHelp), 0);
  const id = Number(positionals[0]);
  if (!positionals[0] || !Number.isInteger(id))
    throw new UsageError('name the shard id to move (see citus_shards)');
  if (typeof values.to !== 'string' || values.to === '')
    throw new UsageError('--to GROUP names the group to move it to');
  const cluster = openCluster(values);
  return start(
    cluster,
    '/sharding/move',
    { shard_id: id, to: values.to },
    values['no-wait'] !== true,
    values.json === true,
  );
}

export async function rebalance(argv: string[]): Promise<number> {
  const { values } = parse('rebalance', argv, {
    by: { type: 'string' },
    status: { type: 'boolean' },
    cancel: { type: 'boolean' },
    'no-wait': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (values.help) return (out(rebalanceHelp), 0);
  const cluster = openCluster(values);
  if (values.cancel) {
    const r = await call(cluster, 'POST', '/sharding/cancel');
    out(r.status === 202 ? 'the running job is being cancelled' : 'no job runs');
    return 0;
  }
  if (values.status) {
    const body = check(await call(cluster, 'GET', '/sharding/moves'));
    if (values.json) return (out(JSON.stringify(body, null, 2)), 0);
    const current = body.current as JobRecord | null;
    out(current ? `running: ${current.kind} job ${current.id} since ${current.started_at}` : 'no job runs');
    if (current) for (const m of current.moves) out(`  ${moveLine(m)}`);
    const history = body.history as JobRecord[];
    out(
      table(
        ['JOB', 'KIND', 'STATE', 'STARTED', 'FINISHED', 'MOVES', 'MAX PAUSE MS', 'ERROR'],
        history.map((j) => [
          j.id,
          j.kind + (j.group !== undefined ? ` ${j.group}` : ''),
          j.state,
          j.started_at,
          j.finished_at ?? null,
          `${j.moves.filter((m) => m.state === 'done').length}/${j.moves.length}`,
          Math.max(0, ...j.moves.map((m) => m.pause_ms ?? 0)),
          j.error ?? null,
        ]),
      ),
    );
    return 0;
  }
  return start(
    cluster,
    '/sharding/rebalance',
    { by: byOption(values.by) },
    values['no-wait'] !== true,
    values.json === true,
  );
}

export async function drainGroup(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    'drain-group',
    argv,
    { by: { type: 'string' }, 'no-wait': { type: 'boolean' }, json: { type: 'boolean' } },
    1,
  );
  if (values.help) return (out(drainHelp), 0);
  const group = positionals[0];
  if (group === undefined || !/^\d+$/.test(group))
    throw new UsageError('name the group to drain (a number, see pgscale status)');
  const cluster = openCluster(values);
  return start(
    cluster,
    '/sharding/drain',
    { group, by: byOption(values.by) },
    values['no-wait'] !== true,
    values.json === true,
  );
}
