/**
 * `pgscale reload` and `edit-config`: a changed pgscale.yaml applied to the running cluster by
 * its controller (src/controller/config-service.ts), which says what it applied, what waits for
 * a restart and what it refused (then nothing is applied). `up` on a running cluster does the
 * same (applyFile). edit-config edits a copy of the file in $EDITOR, validates it, shows the
 * effective changes and, once confirmed, writes the file and reloads.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Cluster } from '../../cluster/cluster.js';
import { shellQuote } from '../../cluster/conf.js';
import { parseConfig } from '../../config/load.js';
import type { ConfigChange } from '../../controller/config-diff.js';
import { describeChange } from '../../controller/config-diff.js';
import { liveController } from '../../controller/controller-file.js';
import type { ReloadResult } from '../../controller/config-service.js';
import { ClusterError, ErrorCodes, UsageError, errorMessage } from '../../errors.js';
import { parse } from '../args.js';
import { openCluster, out } from '../context.js';
import { controllerCall } from '../controller-api.js';

export const reloadHelp = `Usage: pgscale reload [-c FILE] [--dry-run] [--json]

Applies a changed FILE to the running cluster without an outage (docs/configuration-changes.md):
PostgreSQL settings (postgres.parameters, max_prepared_transactions, replication) are written into
every node's pgscale.conf and reloaded; those PostgreSQL takes only at a restart are shown as
pending restart (in \`pgscale status\` too; \`pgscale restart --pending\` applies them). Proxy
settings reload without dropping clients; high-availability settings hold from its next cycle.
Changes that cannot be made online (nodes, groups, names, directories, addresses) are refused
naming the key and the command to use, and then nothing is applied. Recorded in \`pgscale history\`.

Options:
  --dry-run  only show what would change
  --json     print the controller's answer as JSON
`;

export const editHelp = `Usage: pgscale edit-config [-c FILE] [--yes]

Opens a copy of FILE in $VISUAL or $EDITOR (default vi), validates it (on an error: edit again,
or give up leaving FILE untouched), shows the changes it makes to the running cluster and, once
confirmed (--yes: without asking), writes FILE and applies it as \`pgscale reload\` does. Without
a terminal a bad file or a missing --yes is an error and FILE stays as it was.
`;

type Answer = { status: number; body: Record<string, unknown> };

function reloadCall(cluster: Cluster, body: { text: string; dry_run?: boolean }): Promise<Answer> {
  return controllerCall(
    cluster,
    'POST',
    '/config/reload',
    { ...body, file: cluster.loaded.file },
    'configuration reloads (it is an older version)',
  );
}

/** The changes of an answer, grouped for people. */
function printChanges(changes: ConfigChange[]): void {
  const groups: [ConfigChange['kind'], string][] = [
    ['postgres', 'PostgreSQL settings (nodes reloaded)'],
    ['proxy', 'proxy (reloaded, clients stay connected)'],
    ['ha', 'high availability (from its next cycle)'],
    ['users', 'users and databases (made on every group, the proxy reloaded)'],
    ['next_start', 'taken at the next start of the controller'],
    ['refused', 'refused'],
  ];
  for (const [kind, title] of groups) {
    const list = changes.filter((c) => c.kind === kind);
    if (list.length === 0) continue;
    out(`${title}:`);
    for (const c of list) out(`  ${describeChange(c)}`);
  }
}

/** Prints what a reload did; returns the exit code (1 when refused or rejected). */
export function printReload(r: Answer, file: string): number {
  if (r.status === 400) {
    out(`${file} is not valid, nothing was applied: ${String(r.body.error)}`);
    return 1;
  }
  const changes = (r.body.changes as ConfigChange[] | undefined) ?? [];
  if (r.status !== 200) {
    printChanges(changes);
    out(`not applied: ${String(r.body.error)}`);
    return 1;
  }
  const res = r.body as unknown as ReloadResult;
  let certFailed = false;
  for (const c of res.certificates ?? []) {
    if (c.loaded === 'failed') certFailed = true;
    out(
      c.loaded === 'failed'
        ? `certificate ${c.what}: not renewed or not loaded: ${c.error ?? 'unknown error'}`
        : `certificate ${c.what} renewed (valid to ${c.valid_to}; ${c.loaded})`,
    );
  }
  if (changes.length === 0) {
    out(`no change: the cluster runs with what ${file} says`);
    return certFailed ? 1 : 0;
  }
  printChanges(changes);
  if (res.dry_run) {
    out('(dry run: nothing applied)');
    return 0;
  }
  let code = certFailed ? 1 : 0;
  const pending = res.nodes.filter((n) => n.pending_restart.length > 0);
  if (pending.length > 0) {
    out('pending restart (`pgscale restart --pending` applies them, one node at a time):');
    for (const n of pending) out(`  ${n.name}: ${n.pending_restart.join(', ')}`);
  }
  for (const n of res.nodes.filter((x) => x.errors.length > 0)) {
    out(`${n.name} kept its old value of what PostgreSQL rejected: ${n.errors.join('; ')}`);
    code = 1;
  }
  for (const s of res.services) {
    if (s.error) {
      out(`${s.service}: reload failed, it keeps its old configuration: ${s.error}`);
      code = 1;
    } else if (s.restart.length > 0) out(`${s.service}: needs a restart to take ${s.restart.join(', ')}`);
  }
  out(code === 0 ? 'applied' : 'applied, with the problems above');
  return code;
}

/** Applies the file to the running cluster (reload and `up` on a running cluster). */
export async function applyFile(cluster: Cluster, dryRun = false): Promise<Answer> {
  const text = readFileSync(cluster.loaded.file, 'utf8');
  return reloadCall(cluster, { text, ...(dryRun ? { dry_run: true } : {}) });
}

export async function reload(argv: string[]): Promise<number> {
  const { values } = parse('reload', argv, { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } });
  if (values.help) return (out(reloadHelp), 0);
  const cluster = openCluster(values);
  const r = await applyFile(cluster, values['dry-run'] === true);
  if (values.json) {
    out(JSON.stringify(r.body, null, 2));
    return r.status === 200 ? 0 : 1;
  }
  return printReload(r, cluster.loaded.file);
}

async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return (await rl.question(question)).trim().toLowerCase();
  } finally {
    rl.close();
  }
}

export async function editConfig(argv: string[]): Promise<number> {
  const { values } = parse('edit-config', argv, { yes: { type: 'boolean' } });
  if (values.help) return (out(editHelp), 0);
  const cluster = openCluster(values);
  const file = cluster.loaded.file;
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
  const original = readFileSync(file, 'utf8');
  const copy = join(dirname(file), `.${basename(file)}.edit-${process.pid}.yaml`);
  writeFileSync(copy, original, { mode: statSync(file).mode & 0o777 });
  const controller = liveController(cluster.dataDir) !== null;
  try {
    for (;;) {
      const editor = process.env.VISUAL || process.env.EDITOR || 'vi';
      // $EDITOR may hold arguments ("code --wait"): run by the shell, the file quoted.
      const ed = spawnSync(`${editor} ${shellQuote(copy)}`, { stdio: 'inherit', shell: true });
      if (ed.status !== 0)
        throw new ClusterError(ErrorCodes.USAGE, `the editor (${editor}) failed; ${file} is unchanged`);
      const text = readFileSync(copy, 'utf8');
      if (text === original) return (out(`no change; ${file} is unchanged`), 0);
      let problem: string | null = null;
      let check: Answer | null = null;
      try {
        parseConfig(text, file);
        if (controller) check = await reloadCall(cluster, { text, dry_run: true });
        if (check && check.status !== 200) problem = String(check.body.error);
      } catch (e) {
        if (e instanceof ClusterError && e.code === ErrorCodes.INTERNAL) throw e;
        problem = errorMessage(e);
      }
      if (problem) {
        if (check) printChanges((check.body.changes as ConfigChange[] | undefined) ?? []);
        out(`${problem}`);
        if (interactive && (await ask('edit again? [Y/n] ')) !== 'n') continue;
        throw new ClusterError(ErrorCodes.CONFIG_INVALID, `not applied; ${file} is unchanged`);
      }
      if (check) printChanges((check.body.changes as ConfigChange[] | undefined) ?? []);
      else out(`no controller runs: ${file} takes effect at the next \`pgscale up\``);
      if (!values.yes) {
        if (!interactive) throw new UsageError(`confirm with --yes to apply; ${file} is unchanged`);
        if ((await ask('apply these changes? [y/N] ')) !== 'y')
          return (out(`not applied; ${file} is unchanged`), 1);
      }
      renameSync(copy, file);
      out(`wrote ${file}`);
      if (!controller) return 0;
      const r = await applyFile(cluster);
      if (r.status !== 200) {
        // Refused after all (the cluster changed meanwhile): the file goes back to what runs.
        writeFileSync(file, original);
        out(`${file} restored to its previous version`);
      }
      return printReload(r, file);
    }
  } finally {
    rmSync(copy, { force: true });
  }
}
