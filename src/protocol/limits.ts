/**
 * Protocol-wide numbers: request codes of the untyped startup-phase packets, protocol versions,
 * and the size limits PostgreSQL itself enforces. They are kept in one place because the framer,
 * the startup codecs and the proxy's session logic must agree on them exactly.
 * Sources: src/include/libpq/pqcomm.h and src/include/libpq/libpq.h in postgres/postgres
 * (https://github.com/postgres/postgres/blob/REL_18_STABLE/src/include/libpq/pqcomm.h).
 */

/** Builds a protocol version number as sent on the wire: major in the high 16 bits. */
export function protocolVersion(major: number, minor: number): number {
  return ((major << 16) | minor) >>> 0;
}

export const PROTOCOL_3_0 = protocolVersion(3, 0); // 196608
export const PROTOCOL_3_2 = protocolVersion(3, 2); // 196610, PostgreSQL 18+
/** The newest protocol version this code speaks. */
export const LATEST_PROTOCOL = PROTOCOL_3_2;

/** Request codes: a startup-phase packet whose "version" is one of these is not a StartupMessage. */
export const CANCEL_REQUEST_CODE = 80877102; // 1234 << 16 | 5678
export const SSL_REQUEST_CODE = 80877103; // 1234 << 16 | 5679
export const GSSENC_REQUEST_CODE = 80877104; // 1234 << 16 | 5680

/**
 * MAX_STARTUP_PACKET_LENGTH. PostgreSQL compares it with the length minus the 4 length bytes;
 * we compare it with the length field itself, i.e. we are 4 bytes stricter, which no real client
 * notices and keeps "length > 10000 is rejected" literally true.
 */
export const MAX_STARTUP_PACKET_LENGTH = 10000;
/** The smallest startup packet: 4 length bytes + 4 code bytes. */
export const MIN_STARTUP_PACKET_LENGTH = 8;
/** PQ_SMALL_MESSAGE_LIMIT: cap on typed messages before authentication completes. */
export const PQ_SMALL_MESSAGE_LIMIT = 10000;
/** PQ_LARGE_MESSAGE_LIMIT = MaxAllocSize - 1 = 1 GiB - 2: cap on typed messages after auth. */
export const PQ_LARGE_MESSAGE_LIMIT = 0x3fffffff - 1;

/** Cancel/BackendKeyData secret length bounds: exactly 4 in 3.0; 4..256 bytes since 3.2. */
export const CANCEL_KEY_LENGTH_3_0 = 4;
export const MIN_CANCEL_KEY_LENGTH = 4;
export const MAX_CANCEL_KEY_LENGTH = 256;
