/** Command-line option helpers shared by the benchmarks. */

/** `--what`'s value as an integer ≥ `min`, or `def` when absent; a clear error otherwise. */
export function int(v: string | undefined, def: number, what: string, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${what}: expected an integer ≥ ${min}, got "${v}"`);
  return n;
}
