/**
 * The route an EXPLAIN through a sharded database's proxy shows (docs/sharding.md, "Seeing the
 * route"), written into the server's reply for that one statement:
 *
 * - text format (the default), in the shape Citus gives its distributed plans: rows naming the
 *   proxy's router, the group, the shards and what pinned them come first, then the group's own
 *   plan rows, indented beneath an arrow;
 * - JSON: one key, "pgscale", added first to the top-level object of PostgreSQL's document (its
 *   "Plan" keeps its place, so tools reading the plan still can), the document still one row;
 * - XML and YAML: the document is left as PostgreSQL made it; a NOTICE carries the route.
 *
 * The session (shard-steps.ts) makes an ExplainNote when it routes an EXPLAIN; the leg that runs
 * it (server-leg.ts) hands each DataRow of that statement to its ExplainRewrite. The sharding
 * host's replies for a statement on every group are rewritten the same way (rewriteReplies).
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { decodeDataRow, encodeBackendMessage } from '../../protocol/backend-messages.js';
import { buildNoticeResponse } from '../../protocol/error-response.js';
import type { ExplainFormat, RouteFacts } from '../../sharding/explain-route.js';

/** What the session knows of an EXPLAIN when it routes it. */
export interface ExplainNote {
  readonly format: ExplainFormat;
  readonly facts: RouteFacts;
}

/** Where the statement ran: the group, and whether on its primary or a replica (null: not one server). */
export interface RanOn {
  readonly group: string;
  readonly server: 'primary' | 'replica' | null;
}

/** How far the server's plan rows are moved right, under the arrow (as Citus shows a task's plan). */
const INDENT = '        ';

/** The route's lines for the text format (without the group's plan). */
export function routeLines(facts: RouteFacts, on: RanOn): string[] {
  const lines = ['Custom Scan (pgscale router)'];
  switch (facts.kind) {
    case 'one': {
      const shards = facts.shards.map((s) => `${s.id} (${s.name})`).join(', ');
      lines.push(`  Group: ${on.group}  ${facts.shards.length === 1 ? 'Shard' : 'Shards'}: ${shards}`);
      break;
    }
    case 'local':
      lines.push(`  Group: ${on.group} (no distributed or reference table)`);
      break;
    case 'reference':
      lines.push(`  Group: ${on.group} (reference tables only: any group answers)`);
      break;
    case 'every':
      lines.push(`  Groups: every group, by the sharding host with two-phase commit`);
      break;
  }
  if (facts.reason !== null) lines.push(`  Reason: ${facts.reason}`);
  const server = on.server === null ? '' : ` (${on.server})`;
  lines.push(
    facts.kind === 'every' ? `  ->  Plan on group ${on.group}` : `  ->  Plan on group ${on.group}${server}`,
  );
  return lines;
}

/** The route as one JSON object (the "pgscale" key's value). */
export function routeObject(facts: RouteFacts, on: RanOn): Record<string, unknown> {
  const o: Record<string, unknown> = { Router: 'pgscale', Route: routeKindName(facts) };
  o.Group = facts.kind === 'every' ? 'every group' : on.group;
  if (on.server !== null && facts.kind !== 'every') o.Server = on.server;
  if (facts.shards.length > 0)
    o.Shards = facts.shards.map((s) => ({ 'Shard Id': s.id, 'Shard Name': s.name }));
  if (facts.reason !== null) o.Reason = facts.reason;
  if (facts.kind === 'every') o['Plan Shown'] = `group ${on.group}`;
  return o;
}

function routeKindName(facts: RouteFacts): string {
  switch (facts.kind) {
    case 'one':
      return 'one group';
    case 'local':
      return 'local';
    case 'reference':
      return 'reference tables';
    case 'every':
      return 'every group';
  }
}

/** The route in one sentence (the NOTICE for XML and YAML). */
export function routeSentence(facts: RouteFacts, on: RanOn): string {
  const lines = routeLines(facts, on).slice(1);
  return `pgscale route: ${lines.map((l) => l.trim().replace(/^->\s+/, '')).join('; ')}`;
}

/**
 * Inserts `"pgscale": {…}` as the first key of the first object of a JSON EXPLAIN document, in
 * PostgreSQL's layout (two spaces per level). Null when the document has no such object.
 */
export function jsonWithRoute(doc: string, route: Record<string, unknown>): string | null {
  const m = /^\s*\[\s*\{(\r?\n?)/.exec(doc);
  if (m === null) return null;
  const body = JSON.stringify(route, null, 2).replace(/\n/g, '\n    ');
  const nl = m[1] === '' ? ' ' : m[1]!;
  const indent = m[1] === '' ? '' : '    ';
  return `${doc.slice(0, m[0].length)}${indent}"pgscale": ${body},${nl}${doc.slice(m[0].length)}`;
}

function dataRow(text: string): Buffer {
  return encodeBackendMessage({ name: 'DataRow', values: [Buffer.from(text, 'utf8')] });
}

/** One statement's rewriting: the first DataRow brings the route, each one after is indented. */
export class ExplainRewrite {
  private started = false;

  constructor(
    readonly note: ExplainNote,
    private readonly on: RanOn,
  ) {}

  /** What replaces DataRow `f` (its bytes when it stays as it came). */
  row(f: TypedFrame): Buffer[] {
    return this.rowBytes(f.partial ? null : f.payload, f.bytes);
  }

  /** rowBytes for a whole message's bytes (the host's replies). */
  private rowBytes(payload: Buffer | null, bytes: Buffer): Buffer[] {
    const first = !this.started;
    this.started = true;
    const value = payload === null ? null : oneText(payload);
    const { format, facts } = this.note;
    if (format === 'text') {
      const out = first ? routeLines(facts, this.on).map(dataRow) : [];
      // A row streamed in pieces (over 64 kB) is passed on as it came.
      out.push(value === null ? bytes : dataRow(INDENT + value));
      return out;
    }
    if (format === 'json' && first && value !== null) {
      const doc = jsonWithRoute(value, routeObject(facts, this.on));
      if (doc !== null) return [dataRow(doc)];
    }
    if (!first) return [bytes];
    return [buildNoticeResponse('NOTICE', '00000', routeSentence(facts, this.on)), bytes];
  }

  /** The sharding host's replies (one message per buffer) with their DataRows rewritten. */
  rewriteReplies(replies: readonly Buffer[]): Buffer[] {
    const out: Buffer[] = [];
    for (const b of replies) {
      if (b[0] === 0x44 /* 'D' */) out.push(...this.rowBytes(b.subarray(5), b));
      else out.push(b);
    }
    return out;
  }
}

/** The text of a one-column DataRow (EXPLAIN's "QUERY PLAN"), or null for any other row. */
function oneText(payload: Buffer): string | null {
  const d = decodeDataRow(payload);
  if (!d.ok || d.value.values.length !== 1) return null;
  const v = d.value.values[0];
  return v === null || v === undefined ? null : v.toString('utf8');
}
