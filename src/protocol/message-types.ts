/**
 * The type bytes of typed protocol messages, per direction
 * (https://www.postgresql.org/docs/current/protocol-message-formats.html). The same letter means
 * different things in each direction ('D' is Describe from a client and DataRow from a server), so
 * the two tables are kept apart and every decoder is told which side it is reading.
 */

export const FrontendType = {
  Bind: 'B',
  Close: 'C',
  CopyData: 'd',
  CopyDone: 'c',
  CopyFail: 'f',
  Describe: 'D',
  Execute: 'E',
  Flush: 'H',
  FunctionCall: 'F',
  Parse: 'P',
  /** PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse all use 'p'. */
  AuthResponse: 'p',
  Query: 'Q',
  Sync: 'S',
  Terminate: 'X',
} as const;

export const BackendType = {
  Authentication: 'R',
  BackendKeyData: 'K',
  BindComplete: '2',
  CloseComplete: '3',
  CommandComplete: 'C',
  CopyData: 'd',
  CopyDone: 'c',
  CopyInResponse: 'G',
  CopyOutResponse: 'H',
  CopyBothResponse: 'W',
  DataRow: 'D',
  EmptyQueryResponse: 'I',
  ErrorResponse: 'E',
  FunctionCallResponse: 'V',
  NegotiateProtocolVersion: 'v',
  NoData: 'n',
  NoticeResponse: 'N',
  NotificationResponse: 'A',
  ParameterDescription: 't',
  ParameterStatus: 'S',
  ParseComplete: '1',
  PortalSuspended: 's',
  ReadyForQuery: 'Z',
  RowDescription: 'T',
} as const;

export type FrontendTypeByte = (typeof FrontendType)[keyof typeof FrontendType];
export type BackendTypeByte = (typeof BackendType)[keyof typeof BackendType];

function byteSet(values: readonly string[]): Uint8Array {
  const set = new Uint8Array(256);
  for (const v of values) set[v.charCodeAt(0)] = 1;
  return set;
}

const frontendSet = byteSet(Object.values(FrontendType));
const backendSet = byteSet(Object.values(BackendType));

export function isFrontendType(byte: number): boolean {
  return frontendSet[byte] === 1;
}

export function isBackendType(byte: number): boolean {
  return backendSet[byte] === 1;
}
