/**
 * Markdown tables of config keys generated from the zod schema itself (key, default, the
 * `.describe()` text), so that docs/configuration.md cannot drift from what the code accepts:
 * a unit test compares the tables in the doc with these, and `node --import tsx
 * scripts/config-doc.ts` rewrites them. Nested objects become dotted keys; a record (such as
 * proxy.databases) gets a row for itself and one per key of its values (`<name>` in the path).
 */
import { proxySchema } from './schema.js';

export interface KeyRow {
  key: string;
  default: string;
  meaning: string;
}

interface Def {
  type: string;
  innerType?: ZodLike;
  defaultValue?: unknown;
  shape?: Record<string, ZodLike>;
  valueType?: ZodLike;
}

interface ZodLike {
  readonly description?: string;
  readonly _zod: { readonly def: unknown };
}

function def(t: ZodLike): Def {
  return t._zod.def as Def;
}

/** The description, the default and the object shape under wrappers (default, optional, nullable). */
function unwrap(t: ZodLike): {
  description: string | undefined;
  dflt: { value: unknown } | null;
  core: ZodLike;
} {
  let description = t.description;
  let dflt: { value: unknown } | null = null;
  let cur = t;
  for (;;) {
    const d = def(cur);
    if (d.type === 'default' && dflt === null) dflt = { value: d.defaultValue };
    if (!d.innerType || !['default', 'optional', 'nullable', 'prefault'].includes(d.type)) break;
    cur = d.innerType;
    description ??= cur.description;
  }
  return { description, dflt, core: cur };
}

function showDefault(d: { value: unknown } | null): string {
  if (d === null) return '—';
  const v = d.value;
  if (Array.isArray(v)) return `\`[${v.join(', ')}]\``;
  if (v !== null && typeof v === 'object') return Object.keys(v).length === 0 ? '`{}`' : '(below)';
  return `\`${String(v)}\``;
}

/** One row per leaf key of an object schema, depth first, in the schema's order. */
export function keyRows(schema: ZodLike, prefix: string): KeyRow[] {
  const rows: KeyRow[] = [];
  const shape = def(unwrap(schema).core).shape ?? {};
  for (const [name, field] of Object.entries(shape)) {
    const key = `${prefix}.${name}`;
    const { description, dflt, core } = unwrap(field);
    const d = def(core);
    if (d.type === 'object' && d.shape) {
      if (description) rows.push({ key, default: '', meaning: description });
      rows.push(...keyRows(core, key));
      continue;
    }
    rows.push({ key, default: showDefault(dflt), meaning: description ?? '' });
    if (d.type === 'record' && d.valueType) rows.push(...keyRows(d.valueType, `${key}.<name>`));
  }
  return rows;
}

export function markdownTable(rows: readonly KeyRow[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    '| key | default | meaning |',
    '|---|---|---|',
    ...rows.map((r) => `| \`${r.key}\` | ${cell(r.default)} | ${cell(r.meaning)} |`),
  ].join('\n');
}

/** The generated tables of docs/configuration.md, by marker name. */
export function generatedTables(): Record<string, string> {
  return { 'proxy-keys': markdownTable(keyRows(proxySchema, 'proxy')) };
}

const BEGIN = (name: string) => `<!-- generated:${name} (scripts/config-doc.ts; do not edit) -->`;
const END = (name: string) => `<!-- end:${name} -->`;

/** `doc` with every generated table replaced by its current text; throws if a marker is missing. */
export function updateDoc(doc: string): string {
  let out = doc;
  for (const [name, table] of Object.entries(generatedTables())) {
    const a = out.indexOf(BEGIN(name));
    const b = out.indexOf(END(name));
    if (a < 0 || b < a) throw new Error(`the doc has no ${BEGIN(name)} … ${END(name)} block`);
    out = `${out.slice(0, a)}${BEGIN(name)}\n${table}\n${out.slice(b)}`;
  }
  return out;
}
