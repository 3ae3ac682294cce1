/**
 * PostgreSQL WAL positions (pg_lsn, "16/B374D848") as bigints: parse the text form PostgreSQL
 * prints, format one back the way PostgreSQL does (upper-case hex, no padding), and the distance
 * between two positions in bytes. The one copy: the HA probe, node status, the proxy's read
 * router and replica monitors, and the admin console all use it.
 * https://www.postgresql.org/docs/current/datatype-pg-lsn.html
 */

/** The position, or null for null, an empty string or anything not of the form `X/X`. */
export function parseLsn(s: string | null | undefined): bigint | null {
  if (!s) return null;
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(s);
  if (!m) return null;
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** How many bytes of WAL `ahead` is past `behind` (negative when it is behind), as pg_wal_lsn_diff. */
export function lsnDiff(ahead: bigint, behind: bigint): bigint {
  return ahead - behind;
}
