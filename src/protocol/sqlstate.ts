/**
 * SQLSTATE codes a PostgreSQL proxy sends or must recognise, with PostgreSQL's own condition names
 * (https://www.postgresql.org/docs/current/errcodes-appendix.html). A proxy that invents its own
 * codes breaks drivers, which branch on these five characters (e.g. retry on 40001, reconnect on
 * 57P01), so every error we synthesise must use the code PostgreSQL would have used.
 */

export const SqlState = {
  /** 08P01 protocol_violation: malformed or unexpected message; the connection cannot continue. */
  PROTOCOL_VIOLATION: '08P01',
  /** 08006 connection_failure: the server side of a connection broke. */
  CONNECTION_FAILURE: '08006',
  /** 08004 sqlserver_rejected_establishment_of_sqlconnection: e.g. shutting down, not ready. */
  CONNECTION_REJECTED: '08004',
  /** 08003 connection_does_not_exist. */
  CONNECTION_DOES_NOT_EXIST: '08003',
  /** 0A000 feature_not_supported: e.g. unsupported frontend protocol version. */
  FEATURE_NOT_SUPPORTED: '0A000',
  /** 28000 invalid_authorization_specification: no user, no pg_hba match, TLS required. */
  INVALID_AUTHORIZATION_SPECIFICATION: '28000',
  /** 28P01 invalid_password: wrong password, unknown user (indistinguishable on purpose). */
  INVALID_PASSWORD: '28P01',
  /** 3D000 invalid_catalog_name: unknown database (only reported after authentication). */
  INVALID_CATALOG_NAME: '3D000',
  /** 53300 too_many_connections. */
  TOO_MANY_CONNECTIONS: '53300',
  /** 53100 disk_full. */
  DISK_FULL: '53100',
  /** 53200 out_of_memory. */
  OUT_OF_MEMORY: '53200',
  /** 57P01 admin_shutdown: server (or proxy) is shutting down; drivers reconnect. */
  ADMIN_SHUTDOWN: '57P01',
  /** 57P02 crash_shutdown. */
  CRASH_SHUTDOWN: '57P02',
  /** 57P03 cannot_connect_now: server starting up or in recovery. */
  CANNOT_CONNECT_NOW: '57P03',
  /** 57014 query_canceled: statement cancelled (CancelRequest or statement_timeout). */
  QUERY_CANCELED: '57014',
  /** 42601 syntax_error. */
  SYNTAX_ERROR: '42601',
  /** 42P05 duplicate_prepared_statement. */
  DUPLICATE_PREPARED_STATEMENT: '42P05',
  /** 26000 invalid_sql_statement_name: unknown prepared statement. */
  INVALID_SQL_STATEMENT_NAME: '26000',
  /** 34000 invalid_cursor_name: unknown portal. */
  INVALID_CURSOR_NAME: '34000',
  /** 25001 active_sql_transaction: a command that cannot run inside a transaction block. */
  ACTIVE_SQL_TRANSACTION: '25001',
  /** 25P02 in_failed_sql_transaction: commands ignored until end of transaction block. */
  IN_FAILED_SQL_TRANSACTION: '25P02',
  /** 25006 read_only_sql_transaction: a write reached a standby. */
  READ_ONLY_SQL_TRANSACTION: '25006',
  /** 40000 transaction_rollback: the transaction was rolled back (a retry may succeed). */
  TRANSACTION_ROLLBACK: '40000',
  /** 40001 serialization_failure. */
  SERIALIZATION_FAILURE: '40001',
  /** 22021 character_not_in_repertoire: invalid byte sequence for the encoding. */
  CHARACTER_NOT_IN_REPERTOIRE: '22021',
  /** 55000 object_not_in_prerequisite_state: e.g. SHUTDOWN of a proxy the controller owns. */
  OBJECT_NOT_IN_PREREQUISITE_STATE: '55000',
  /** 42501 insufficient_privilege. */
  INSUFFICIENT_PRIVILEGE: '42501',
  /** 42704 undefined_object: e.g. unknown configuration parameter. */
  UNDEFINED_OBJECT: '42704',
  /** 22023 invalid_parameter_value. */
  INVALID_PARAMETER_VALUE: '22023',
  /** XX000 internal_error. */
  INTERNAL_ERROR: 'XX000',
} as const;

export type SqlStateName = keyof typeof SqlState;
export type SqlStateCode = (typeof SqlState)[SqlStateName];

const namesByCode: ReadonlyMap<string, SqlStateName> = new Map(
  (Object.keys(SqlState) as SqlStateName[]).map((name) => [SqlState[name], name]),
);

/** The constant name for a known code (e.g. '08P01' → 'PROTOCOL_VIOLATION'), else undefined. */
export function sqlStateName(code: string): SqlStateName | undefined {
  return namesByCode.get(code);
}

/**
 * True when `code` is shaped like a SQLSTATE: five characters from [0-9A-Z]. Used to vet codes
 * read from a server before echoing them to a client.
 */
export function isSqlStateShape(code: string): boolean {
  return /^[0-9A-Z]{5}$/.test(code);
}

/** The two-character class of a SQLSTATE ('08' connection exception, '28' auth, …). */
export function sqlStateClass(code: string): string {
  return code.slice(0, 2);
}
