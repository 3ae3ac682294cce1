import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { isMd5Hash, md5PasswordResponse, md5StoredHash, verifyMd5Response } from './md5.js';

const md5 = (s: string | Buffer): string => createHash('md5').update(s).digest('hex');

void test('stored hash is md5(password || user)', () => {
  assert.equal(md5StoredHash('postgres', 'secret'), 'md5' + md5('secretpostgres'));
  assert.equal(isMd5Hash(md5StoredHash('u', 'p')), true);
  assert.equal(isMd5Hash('md5' + 'A'.repeat(32)), false);
  assert.equal(isMd5Hash('md5abc'), false);
});

void test('client response is md5(hex(md5(password || user)) || salt)', () => {
  const salt = Buffer.from([1, 2, 3, 4]);
  const inner = md5('secretpostgres');
  assert.equal(
    md5PasswordResponse('postgres', 'secret', salt),
    'md5' + md5(Buffer.concat([Buffer.from(inner), salt])),
  );
});

void test('verify against a stored hash and a plain password; wrong inputs fail', () => {
  const salt = Buffer.from([9, 8, 7, 6]);
  const resp = md5PasswordResponse('alice', 'pw', salt);
  assert.equal(
    verifyMd5Response(resp, { kind: 'md5', hash: md5StoredHash('alice', 'pw') }, 'alice', salt),
    true,
  );
  assert.equal(verifyMd5Response(resp, { kind: 'plain', password: 'pw' }, 'alice', salt), true);
  assert.equal(verifyMd5Response(resp, { kind: 'plain', password: 'px' }, 'alice', salt), false);
  assert.equal(verifyMd5Response(resp, { kind: 'plain', password: 'pw' }, 'bob', salt), false);
  assert.equal(
    verifyMd5Response(resp, { kind: 'plain', password: 'pw' }, 'alice', Buffer.from([0, 0, 0, 0])),
    false,
  );
  assert.equal(verifyMd5Response('md5', { kind: 'plain', password: 'pw' }, 'alice', salt), false);
});

void test('property: a response verifies iff user, password and salt all match', () => {
  fc.assert(
    fc.property(
      fc.string(),
      fc.string(),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.string(),
      (user, pw, s, other) => {
        const salt = Buffer.from(s);
        const resp = md5PasswordResponse(user, pw, salt);
        assert.equal(verifyMd5Response(resp, { kind: 'plain', password: pw }, user, salt), true);
        if (other !== pw)
          assert.equal(verifyMd5Response(resp, { kind: 'plain', password: other }, user, salt), false);
      },
    ),
  );
});
