/**
 * The shard router's second plan cache (shard-router.ts keeps the first, by exact text): plans
 * by literal shape, for texts that carry their values as literals — pgbench's simple protocol,
 * drivers that inline parameters — and so are new texts at every execution. A text's shape
 * (sharding/literal-shape.ts, one lexer pass) is looked up; the first text of a shape is planned
 * as written and as a probe (sharding/plan-template.ts), and when the two agree the template
 * serves every later text of that shape without a parse. A shape whose plans do not agree is
 * remembered as such, and its texts are planned one by one as before. Entries are per catalog
 * version, like the router's own.
 */
import { literalShape } from '../sharding/literal-shape.js';
import { instantiate, makeTemplate, probeText } from '../sharding/plan-template.js';
import type { PlanTemplate } from '../sharding/plan-template.js';
import type { KeyPlan } from '../sharding/shard-plan.js';
import { LruCache } from '../sql/lru-cache.js';

interface Entry {
  readonly version: number;
  /** null: the shape's texts are planned one by one. */
  readonly template: PlanTemplate | null;
}

export class ShapePlans {
  private readonly shapes: LruCache<Entry>;

  constructor(entries: number) {
    this.shapes = new LruCache<Entry>(entries);
  }

  clear(): void {
    this.shapes.clear();
  }

  /**
   * The plan of `sql` under catalog `version` by its shape, planning with `plan` on a new shape
   * (`shared`: it serves the shape's other texts too, so there is no need to keep it by text);
   * null when the text has no shape or its shape has no template (plan it by its text). `scope`
   * prefixes the key: whatever else than the text the plan depends on (a search path), as the
   * router's text cache keys it.
   */
  plan(
    sql: string,
    version: number,
    plan: (text: string) => KeyPlan,
    scope = '',
  ): { plan: KeyPlan; shared: boolean } | null {
    const shape = literalShape(sql);
    if (shape === null) return null;
    const key = scope + shape.key;
    const hit = this.shapes.get(key);
    if (hit !== undefined && hit.version === version)
      return hit.template === null ? null : { plan: instantiate(hit.template, shape.values), shared: true };
    const real = plan(sql);
    // Not cacheable: the answer depends on the moment (the parser was not ready), not the text.
    if (real.kind === 'fixed' && !real.cacheable) return { plan: real, shared: false };
    const probe = probeText(shape, sql);
    const template = probe === null ? null : makeTemplate(shape, real, plan(probe));
    this.shapes.set(key, { version, template });
    return { plan: real, shared: template !== null };
  }
}
