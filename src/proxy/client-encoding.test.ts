import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodingTag, refusedEncodingSet, sessionEncoding, unsafeEncodingStatus } from './client-encoding.js';

const ps = (name: string, value: string) => Buffer.from(`${name}\0${value}\0`, 'latin1');
const none = new Map<string, string>();

void test('the encoding in force: the transaction’s last SET, else the session’s; UTF8 is ""', () => {
  const session = new Map([['client_encoding', "'latin1'"]]);
  assert.equal(sessionEncoding([], session, none), 'LATIN1');
  assert.equal(
    sessionEncoding([{ kind: 'set', name: 'client_encoding', value: "'UTF-8'" }], session, none),
    '',
  );
  assert.equal(sessionEncoding([{ kind: 'reset_all' }], session, none), '');
  assert.equal(encodingTag('SELECT 1', [], session, none), '', 'ASCII text: names unchanged');
  assert.equal(encodingTag("SELECT 'é'", [], session, none), 'LATIN1');
});

void test('SETs to an unsafe encoding, and a server reporting one, are recognised', () => {
  assert.equal(refusedEncodingSet({ kind: 'set', name: 'client_encoding', value: "'sjis'" }), 'SJIS');
  assert.equal(refusedEncodingSet({ kind: 'set', name: 'client_encoding', value: 'LATIN1' }), null);
  assert.equal(refusedEncodingSet({ kind: 'set', name: 'search_path', value: "'sjis'" }), null);
  assert.equal(unsafeEncodingStatus(ps('client_encoding', 'GBK')), 'GBK');
  assert.equal(unsafeEncodingStatus(ps('client_encoding', 'LATIN1')), null);
  assert.equal(unsafeEncodingStatus(ps('application_name', 'GBK')), null);
});
