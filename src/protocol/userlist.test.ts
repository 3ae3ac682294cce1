import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseUserlist } from './userlist.js';
import { md5StoredHash } from './md5.js';

const scram = `SCRAM-SHA-256$4096:${Buffer.alloc(16, 1).toString('base64')}$${Buffer.alloc(32, 2).toString('base64')}:${Buffer.alloc(32, 3).toString('base64')}`;

void test('plain, md5 and SCRAM secrets; comments, blank lines, CRLF, "" escapes', () => {
  const md5 = md5StoredHash('bob', 'pw');
  const text = [
    '; comment',
    '# another',
    '',
    '"alice" "plain pass"',
    `"bob"\t"${md5}"   ; trailing comment`,
    `  "carol" "${scram}"`,
    '"say ""hi""" "a""b"\r',
  ].join('\n');
  const r = parseUserlist(text);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(
    r.entries.map((e) => [e.user, e.secret.kind, e.line]),
    [
      ['alice', 'plain', 4],
      ['bob', 'md5', 5],
      ['carol', 'scram', 6],
      ['say "hi"', 'plain', 7],
    ],
  );
  const last = r.entries[3]!.secret;
  assert.ok(last.kind === 'plain');
  assert.equal(last.password, 'a"b');
});

void test('md5-looking strings that are not lowercase 32-hex are plain passwords (as PostgreSQL)', () => {
  const r = parseUserlist(`"u" "md5${'A'.repeat(32)}"\n"v" "md5abc"`);
  assert.deepEqual(
    r.entries.map((e) => e.secret.kind),
    ['plain', 'plain'],
  );
});

void test('errors name the line and never contain the secret', () => {
  const secret = 'Sup3rS3cret!';
  const text = [
    `alice "${secret}"`,
    `"bob" "${secret}`,
    `"carol""${secret}"`,
    `"dave" "${secret}" junk`,
    `"" "${secret}"`,
    `"erin" ""`,
    `"frank" "SCRAM-SHA-256$4096:${secret}"`,
    `"gina" "${secret}"`,
    `"gina" "${secret}"`,
  ].join('\n');
  const r = parseUserlist(text);
  assert.deepEqual(
    r.errors.map((e) => e.line),
    [1, 2, 3, 4, 5, 6, 7, 9],
  );
  for (const e of r.errors) {
    assert.ok(!e.message.includes(secret), e.message);
    assert.ok(!e.message.includes('SCRAM-SHA-256$'), e.message);
    assert.match(e.message, new RegExp(`^line ${e.line}: `));
  }
  assert.deepEqual(
    r.entries.map((e) => e.user),
    ['gina'],
  );
});

void test('property: random text never throws and never leaks a quoted secret into errors', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (text) => {
      const r = parseUserlist(text);
      for (const e of r.errors) assert.ok(e.line >= 1);
    }),
  );
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 10 }).filter((s) => !/[\r\n]/.test(s)),
      fc.string({ minLength: 8, maxLength: 20 }).filter((s) => !/[\r\n"]/.test(s)),
      fc.constantFrom('', ' junk', '"', ' "x"x'),
      (user, secret, tail) => {
        const quoted = (s: string): string => `"${s.replaceAll('"', '""')}"`;
        const r = parseUserlist(`${quoted(user)} "${secret}${tail}`);
        for (const e of r.errors) assert.ok(!e.message.includes(secret));
      },
    ),
  );
});

void test('property: quoting round-trips user and plain secret', () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 15 }).filter((s) => !/[\r\n]/.test(s)),
      fc
        .string({ minLength: 1, maxLength: 15 })
        .filter((s) => !/[\r\n]/.test(s) && !s.startsWith('SCRAM-SHA-256$')),
      (user, pw) => {
        const q = (s: string): string => `"${s.replaceAll('"', '""')}"`;
        const r = parseUserlist(`${q(user)} ${q(pw)}`);
        assert.deepEqual(r.errors, []);
        assert.equal(r.entries[0]?.user, user);
        const s = r.entries[0]?.secret;
        if (s?.kind === 'plain') assert.equal(s.password, pw);
        else assert.equal(s?.kind, 'md5');
      },
    ),
  );
});
