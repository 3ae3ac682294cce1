import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeBackendMessage } from '../../protocol/backend-messages.js';
import type { TypedFrame } from '../../protocol/framer.js';
import { encodeFrontendMessage } from '../../protocol/frontend-messages.js';
import type { FrontendMessage } from '../../protocol/frontend-messages.js';
import { extendedReplies, hostBatch } from './host-extended.js';

function frame(m: FrontendMessage): TypedFrame {
  const bytes = encodeFrontendMessage(m);
  return {
    kind: 'typed',
    type: String.fromCharCode(bytes[0]!),
    bytes,
    payload: bytes.subarray(5),
    chunk: bytes,
    start: 0,
    end: bytes.length,
  };
}

const P = frame({ name: 'Parse', statement: '', query: 'INSERT INTO t VALUES ($1)', paramTypes: [] });
const B = frame({
  name: 'Bind',
  portal: '',
  statement: '',
  paramFormats: [],
  params: [Buffer.from('5'), null],
  resultFormats: [],
});
const D = frame({ name: 'Describe', target: 'portal', targetName: '' });
const E = frame({ name: 'Execute', portal: '', maxRows: 0 });
const S = frame({ name: 'Sync' });

test('Parse, Bind, Describe, Execute, Sync of one statement make a batch; its parameters as text', () => {
  assert.deepEqual(hostBatch([P, B, D, E, S]), {
    count: 5,
    parse: true,
    describe: true,
    params: ['5', null],
  });
  assert.deepEqual(hostBatch([B, E, S, P]), { count: 3, parse: false, describe: false, params: ['5', null] });
});

test('a batch not all come yet waits', () => {
  for (const inbox of [[P], [P, B], [P, B, D], [P, B, D, E]]) assert.equal(hostBatch(inbox), 'wait');
});

test('other shapes are refused with the reason', () => {
  const named = frame({ name: 'Parse', statement: 's1', query: 'x', paramTypes: [] });
  assert.ok('refused' in (hostBatch([named, B, E, S]) as object));
  const flush = frame({ name: 'Flush' });
  assert.ok('refused' in (hostBatch([P, B, E, flush]) as object));
  const limited = frame({ name: 'Execute', portal: '', maxRows: 10 });
  assert.ok('refused' in (hostBatch([P, B, limited, S]) as object));
  const binary = frame({
    name: 'Bind',
    portal: '',
    statement: '',
    paramFormats: [1],
    params: [Buffer.from([0, 0, 0, 5])],
    resultFormats: [],
  });
  assert.ok('refused' in (hostBatch([P, binary, E, S]) as object));
});

test('replies: ParseComplete, BindComplete, the description (or NoData), rows, tag, ReadyForQuery', () => {
  const T = encodeBackendMessage({
    name: 'RowDescription',
    fields: [
      { name: 'id', tableOid: 0, columnAttr: 0, typeOid: 20, typeSize: 8, typeModifier: -1, format: 0 },
    ],
  });
  const row = encodeBackendMessage({ name: 'DataRow', values: [Buffer.from('1')] });
  const C = encodeBackendMessage({ name: 'CommandComplete', tag: 'INSERT 0 1' });
  const Z = encodeBackendMessage({ name: 'ReadyForQuery', status: 'I' });
  const types = (bs: Buffer[]) => bs.map((b) => String.fromCharCode(b[0]!)).join('');
  const batch = { count: 5, parse: true, describe: true, params: [] };
  assert.equal(types(extendedReplies(batch, [T, row, C, Z])), '12TDCZ');
  assert.equal(types(extendedReplies(batch, [C, Z])), '12nCZ');
  assert.equal(types(extendedReplies({ ...batch, parse: false, describe: false }, [T, row, C, Z])), '2DCZ');
  const err = Buffer.concat([Buffer.from('E'), Buffer.from([0, 0, 0, 4])]);
  assert.equal(types(extendedReplies(batch, [err, Z])), '12EZ');
});
