// The simplest sharding a transaction pooler can do, for bench/min-pooler.mjs's sharded mode
// (MIN_POOLER_SHARDS; bench:shard-cpu's min-pooler floor, issue #15): the group of a transaction
// chosen from its first message by one bigint distribution key, hashed with the project's own
// PostgreSQL partition hash (dist/sharding/hash.js: `npm run build` first) to the shard, the
// shard's group from a fixed map. No SQL parsing, no catalog, no plan:
//  - a Query: the key is the first integer written `KEY = n` or as the first value of
//    `VALUES (n` in its text;
//  - a Bind of a named statement: the key is the parameter written `KEY = $n` or `VALUES ($n` in
//    the statement's text (found once, at its Parse), read in text format;
//  - anything else (a Parse, a Bind of a statement without a key, …): group 0.
// Enough for bench:shard-cpu's three statements in -M simple and -M prepared; not a router.
import { hashRemainder } from '../dist/sharding/hash.js';

/**
 * spec: { key: column name, shardCount, placement: group index per shard remainder }.
 * Returns { route(c, buf, off, next) → group index, keyParam(parseRest) → parameter index or -1 }.
 */
export function shardRouter(spec) {
  const { key, shardCount, placement } = spec;
  const inText = new RegExp(`\\b${key} = (\\d+)|VALUES \\((\\d+)`);
  const inParse = new RegExp(`\\b${key} = \\$(\\d+)|VALUES \\(\\$(\\d+)`);
  const groupOf = (text) => placement[hashRemainder('int8', { format: 'text', text }, shardCount)];

  /** The group of the transaction that begins with the message at buf[off, next). */
  function route(c, buf, off, next) {
    const t = buf[off];
    if (t === 81) {
      // Query: its text, without the terminating zero.
      const m = inText.exec(buf.toString('utf8', off + 5, next - 1));
      return m === null ? 0 : groupOf(m[1] ?? m[2]);
    }
    if (t !== 66) return 0;
    // Bind: portal, statement, format codes, parameters.
    const portalEnd = buf.indexOf(0, off + 5);
    const nameEnd = buf.indexOf(0, portalEnd + 1);
    if (nameEnd === portalEnd + 1) return 0;
    const st = c.statements?.get(buf.toString('utf8', portalEnd + 1, nameEnd));
    if (st === undefined || st.keyParam < 0) return 0;
    let p = nameEnd + 1;
    p += 2 + 2 * buf.readInt16BE(p);
    const n = buf.readInt16BE(p);
    p += 2;
    for (let i = 0; i < n; i++) {
      const len = buf.readInt32BE(p);
      p += 4;
      if (i === st.keyParam) return len < 0 ? 0 : groupOf(buf.toString('latin1', p, p + len));
      if (len > 0) p += len;
    }
    return 0;
  }

  /** The 0-based parameter that holds the key in a Parse's text (`rest`: text, types), or -1. */
  function keyParam(rest) {
    const m = inParse.exec(rest.toString('utf8', 0, rest.indexOf(0)));
    return m === null ? -1 : Number(m[1] ?? m[2]) - 1;
  }

  return { route, keyParam };
}
