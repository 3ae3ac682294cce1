/**
 * A statement on several groups sent with the extended protocol (shard-steps.ts hands it to the
 * sharding host): which client messages make it — an unnamed Parse (or none: a Bind of a
 * statement prepared before), its Bind, a Describe of its portal, its Execute, a Sync — and the
 * replies PostgreSQL would give for them, made from the host's answer to the statement
 * (RowDescription, DataRows, CommandComplete or ErrorResponse, ReadyForQuery). Pure.
 */
import { encodeBackendMessage } from '../../protocol/backend-messages.js';
import type { TypedFrame } from '../../protocol/framer.js';
import {
  bindParamFormat,
  decodeBind,
  decodeDescribe,
  decodeExecute,
  decodeParse,
} from '../../protocol/frontend-messages.js';

export interface HostBatch {
  /** How many messages of the inbox it takes (through the Sync). */
  readonly count: number;
  /** It began with a Parse (answered ParseComplete). */
  readonly parse: boolean;
  /** Its portal is described (RowDescription or NoData). */
  readonly describe: boolean;
  /** The Bind's parameters as text. */
  readonly params: readonly (string | null)[];
}

/** The batch at the head of `inbox`; 'wait': not all of it has come yet; `refused`: why not. */
export function hostBatch(inbox: readonly TypedFrame[]): HostBatch | 'wait' | { readonly refused: string } {
  let i = 0;
  const at = (type: string): TypedFrame | 'wait' | null => {
    const f = inbox[i];
    if (f === undefined) return 'wait';
    return f.type === type ? f : null;
  };
  let parse = false;
  const p = at('P');
  if (p === 'wait') return 'wait';
  if (p !== null) {
    const d = decodeParse(p.payload);
    if (!d.ok) return { refused: 'its Parse cannot be read' };
    if (d.value.statement !== '')
      return { refused: 'only the unnamed statement can be prepared and run in one batch' };
    parse = true;
    i++;
  }
  const b = at('B');
  if (b === 'wait') return 'wait';
  if (b === null) return { refused: 'a Bind must follow its Parse' };
  const bind = decodeBind(b.payload);
  if (!bind.ok) return { refused: 'its Bind cannot be read' };
  if (parse && bind.value.statement !== '') return { refused: 'a Bind must follow its Parse' };
  if (bind.value.resultFormats.some((x) => x !== 0)) return { refused: 'binary results are not supported' };
  const params: (string | null)[] = [];
  for (let k = 0; k < bind.value.params.length; k++) {
    const v = bind.value.params[k]!;
    if (v !== null && bindParamFormat(bind.value, k) !== 0)
      return { refused: 'binary parameters are not supported' };
    params.push(v === null ? null : v.toString('utf8'));
  }
  const portal = bind.value.portal;
  i++;
  let describe = false;
  const d = at('D');
  if (d === 'wait') return 'wait';
  if (d !== null) {
    const dd = decodeDescribe(d.payload);
    if (!dd.ok || dd.value.target !== 'portal' || dd.value.targetName !== portal)
      return { refused: 'only a Describe of its portal may come between Bind and Execute' };
    describe = true;
    i++;
  }
  const e = at('E');
  if (e === 'wait') return 'wait';
  if (e === null) return { refused: 'an Execute of its portal must follow' };
  const ex = decodeExecute(e.payload);
  if (!ex.ok || ex.value.portal !== portal) return { refused: 'an Execute of its portal must follow' };
  if (ex.value.maxRows !== 0) return { refused: 'an Execute with a row limit is not supported' };
  i++;
  const s = at('S');
  if (s === 'wait') return 'wait';
  if (s === null) return { refused: 'a Sync must follow its Execute' };
  return { count: i + 1, parse, describe, params };
}

const PARSE_COMPLETE = encodeBackendMessage({ name: 'ParseComplete' });
const BIND_COMPLETE = encodeBackendMessage({ name: 'BindComplete' });
const NO_DATA = encodeBackendMessage({ name: 'NoData' });

/** The replies to the batch from the host's replies to its statement (one message per buffer). */
export function extendedReplies(batch: HostBatch, host: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  if (host.some((m) => m[0] === 0x45 /* E */)) {
    // PostgreSQL reports a failed Execute after ParseComplete and BindComplete; the description
    // is not known when the statement failed.
    if (batch.parse) out.push(PARSE_COMPLETE);
    out.push(BIND_COMPLETE);
    for (const m of host) if (m[0] === 0x45 || m[0] === 0x5a) out.push(m);
    return out;
  }
  if (batch.parse) out.push(PARSE_COMPLETE);
  out.push(BIND_COMPLETE);
  const description = host.find((m) => m[0] === 0x54 /* T */);
  if (batch.describe) out.push(description ?? NO_DATA);
  for (const m of host) if (m[0] !== 0x54) out.push(m);
  return out;
}
