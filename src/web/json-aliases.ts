/**
 * The deprecated JSON names kept for one release after replication shards were renamed groups:
 * every object of an HTTP API answer (and of `pgscale status --json`) that carries `group` carries
 * `shard` with the same value, and an array `groups` of such objects is repeated as `shards`, so
 * that a client written against the old field names keeps working while it moves to the new ones.
 * Removing this module (and its two calls) is the whole of dropping the old names.
 */

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

const hasGroup = (v: unknown): boolean => isPlainObject(v) && 'group' in v;

export function withShardAliases<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => withShardAliases(v)) as T;
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = withShardAliases(v);
    if (k === 'group' && !('shard' in value) && (typeof v === 'number' || v === null)) out.shard = v;
    if (k === 'groups' && !('shards' in value) && Array.isArray(v) && v.length > 0 && v.every(hasGroup)) {
      out.shards = out[k];
    }
  }
  return out as T;
}
