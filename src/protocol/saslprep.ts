/**
 * SASLprep (RFC 4013) of a password as PostgreSQL applies it before SCRAM hashing, so that the
 * keys we derive equal the server's. PostgreSQL's pg_saslprep
 * (https://github.com/postgres/postgres/blob/REL_18_STABLE/src/common/saslprep.c) returns pure
 * ASCII unchanged, and when normalisation fails (prohibited or unassigned characters, an empty
 * result, the bidi rule) the caller hashes the raw password instead — so failure here is not an
 * error, it means "use the password as is". The tables (RFC 3454's, i.e. Unicode 3.2, which
 * PostgreSQL also uses) come from @mongodb-js/saslprep, the implementation MongoDB's drivers
 * maintain; it throws on every failure, which is the fallback here.
 */
import saslprepStrict from '@mongodb-js/saslprep';

/** The string to hash: the SASLprep'd password, or the password itself where PostgreSQL falls back. */
export function saslprep(password: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7F]*$/.test(password)) return password;
  try {
    const out = saslprepStrict(password, { allowUnassigned: false });
    return out.length === 0 ? password : out;
  } catch {
    return password;
  }
}
