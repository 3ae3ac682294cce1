/**
 * One plan for every text of a literal shape (literal-shape.ts): texts that differ only in their
 * simple literals (`… WHERE aid = 123`, `… WHERE aid = 124`) share a KeyPlan whose key values
 * are that text's literals. The shard router (proxy/shard-router.ts) plans the first text of a
 * shape twice — as written, and with every cut literal replaced by a sentinel of its kind (a
 * distinct int4 value, a distinct string) — and keeps a template only when the two plans are
 * the same object tree except for key constants, each of which is exactly the sentinel of one
 * literal in the probe and exactly that literal's value in the real plan. Then the plan depends
 * on those literals only through these constants, and another text of the shape is planned by
 * putting its literals' values there (`instantiate`), with no parse.
 *
 * What is never a template: a plan that keeps text (a multi-row INSERT's cut for splitting by
 * group, `insert` ≠ null), a fixed route the router turns into work on several groups with the
 * text ('all', 'split-insert'), an answer that is not cacheable, and any plan in which a literal
 * is read in another way than as a key constant taken verbatim (a string literal read as an array,
 * `= ANY('{…}')`: the string sentinel is itself an array literal, so such a plan never matches;
 * a negative number, `-5`, whose constant is not a literal's value). The planner must keep
 * taking a literal's value verbatim into a `const` key source (value transforms belong in
 * resolve-shards.ts / hash.ts); the template tests (plan-template.test.ts) check it on the planner's
 * own statement generator. Pure.
 */
import type { KeyPlan } from './shard-plan.js';
import type { LiteralShape } from './literal-shape.js';
import { withLiterals } from './literal-shape.js';

/** Where a key constant sits in a plan (property names and array indexes), and its literal. */
interface Slot {
  readonly path: readonly (string | number)[];
  readonly literal: number;
}

export interface PlanTemplate {
  /** The real plan of the first text (its constants are replaced per text). */
  readonly plan: KeyPlan;
  readonly slots: readonly Slot[];
}

const INT_SENTINEL_BASE = 1_900_000_000;
const STRING_SENTINEL = 'pgscale-literal-';

/**
 * The probe text: `shape` with a sentinel for each literal; null when the text holds something a
 * sentinel could be taken for (a literal equal to its own sentinel would go unnoticed).
 */
export function probeText(shape: LiteralShape, text: string): string | null {
  if (text.includes(STRING_SENTINEL) || shape.values.some((v) => sentinelIndex(v) >= 0)) return null;
  return withLiterals(
    shape,
    shape.kinds.map((k, i) => (k === 'int' ? String(INT_SENTINEL_BASE + i) : `'{${STRING_SENTINEL}${i}}'`)),
  );
}

function sentinelIndex(value: string): number {
  if (value.startsWith(`{${STRING_SENTINEL}`) && value.endsWith('}')) {
    const n = Number(value.slice(STRING_SENTINEL.length + 1, -1));
    return Number.isInteger(n) ? n : -1;
  }
  if (/^19\d{8}$/.test(value)) return Number(value) - INT_SENTINEL_BASE;
  return -1;
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null;

/** A `{ kind: 'const', value: { format: 'text', text } }` key source's text, else null. */
function constText(x: Obj): string | null {
  if (x.kind !== 'const' || !isObj(x.value)) return null;
  const v = x.value;
  return v.format === 'text' && typeof v.text === 'string' ? v.text : null;
}

/**
 * The template of `real` (the plan of the shape's text) against `probe` (the plan of its probe
 * text), or null when the plans differ in anything but the literals' key constants.
 */
export function makeTemplate(shape: LiteralShape, real: KeyPlan, probe: KeyPlan): PlanTemplate | null {
  if (real.kind === 'fixed') {
    if (!real.cacheable) return null;
    const k = real.route.kind;
    if (k === 'all' || k === 'split-insert') return null;
  }
  const slots: Slot[] = [];
  const path: (string | number)[] = [];
  const walk = (a: unknown, b: unknown): boolean => {
    if (a === b) return true;
    if (Array.isArray(a)) {
      if (!Array.isArray(b) || a.length !== b.length) return false;
      for (let i = 0; i < a.length; i++) {
        path.push(i);
        const ok = walk(a[i], b[i]);
        path.pop();
        if (!ok) return false;
      }
      return true;
    }
    if (!isObj(a) || !isObj(b) || Array.isArray(b)) return false;
    const ta = constText(a);
    const tb = constText(b);
    if (ta !== null && tb !== null) {
      if (ta === tb) return true;
      const i = sentinelIndex(tb);
      if (i < 0 || i >= shape.values.length || shape.values[i] !== ta) return false;
      if (Object.keys(a).length !== 2 || Object.keys(a.value as Obj).length !== 2) return false;
      slots.push({ path: [...path], literal: i });
      return true;
    }
    // A multi-row INSERT's cut keeps text: never shared.
    if ('insert' in a && a.insert !== null) return false;
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    for (const k of keys) {
      if (!(k in b)) return false;
      path.push(k);
      const ok = walk(a[k], b[k]);
      path.pop();
      if (!ok) return false;
    }
    return true;
  };
  return walk(real, probe) ? { plan: real, slots } : null;
}

/** The plan of a text of the template's shape whose literals have these values. */
export function instantiate(t: PlanTemplate, values: readonly string[]): KeyPlan {
  let plan: unknown = t.plan;
  for (const s of t.slots) plan = setIn(plan, s.path, 0, constOf(values[s.literal] ?? ''));
  return plan as KeyPlan;
}

function constOf(text: string): unknown {
  return { kind: 'const', value: { format: 'text', text } };
}

/** `x` with the value at `path[i…]` replaced, sharing every object off the path. */
function setIn(x: unknown, path: readonly (string | number)[], i: number, v: unknown): unknown {
  if (i === path.length) return v;
  const k = path[i]!;
  if (Array.isArray(x)) {
    const copy = x.slice();
    copy[k as number] = setIn(x[k as number], path, i + 1, v);
    return copy;
  }
  const o = x as Obj;
  return { ...o, [k]: setIn(o[k as string], path, i + 1, v) };
}
