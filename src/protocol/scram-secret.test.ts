import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildScramSecret, formatScramSecret, isScramSecret, parseScramSecret } from './scram-secret.js';

const valid = `SCRAM-SHA-256$4096:${Buffer.alloc(16, 1).toString('base64')}$${Buffer.alloc(32, 2).toString('base64')}:${Buffer.alloc(32, 3).toString('base64')}`;

void test('parses a PostgreSQL-format secret and formats it back identically', () => {
  const r = parseScramSecret(valid);
  assert.ok(r.ok);
  assert.equal(r.value.iterations, 4096);
  assert.equal(r.value.salt.length, 16);
  assert.equal(formatScramSecret(r.value), valid);
  assert.equal(isScramSecret(valid), true);
});

void test('strict: malformed secrets are refused, and the message never echoes the secret', () => {
  const bad = [
    valid.replace('SCRAM-SHA-256$', 'SCRAM-SHA-1$'),
    valid.replace('$4096:', '$0:'),
    valid.replace('$4096:', '$04096:'),
    valid.replace('$4096:', '$-1:'),
    valid.replace('$4096:', '$99999999999:'),
    valid.replace(/\$[^$]*\$/, '$4096:$'),
    valid.replace(/:[^:]*$/, ':AAAA'),
    valid.replace(/:[^:]*$/, ':' + Buffer.alloc(32, 3).toString('base64').replace('=', '')),
    valid + '$extra',
    valid.replace(/\$([^$]*)$/, '$$$1x'),
    valid.replace('=', '%'),
  ];
  for (const s of bad) {
    const r = parseScramSecret(s);
    assert.equal(r.ok, false, s);
    if (!r.ok) {
      assert.ok(
        !JSON.stringify(r).includes(Buffer.alloc(32, 2).toString('base64')),
        'no secret in the error',
      );
      assert.equal(r.message, 'invalid SCRAM secret');
    }
  }
});

void test('buildScramSecret: known salt gives a stable secret; random salt differs', async () => {
  const salt = Buffer.alloc(16, 7);
  const a = await buildScramSecret('pw', { salt, iterations: 4096 });
  const b = await buildScramSecret('pw', { salt, iterations: 4096 });
  assert.equal(formatScramSecret(a), formatScramSecret(b));
  const c = await buildScramSecret('pw');
  assert.notEqual(c.salt.toString('hex'), salt.toString('hex'));
  assert.equal(c.iterations, 4096);
});

void test('property: parse(format(s)) = s; random text never throws', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.uint8Array({ minLength: 1, maxLength: 64 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      (iterations, salt, sk, svk) => {
        const s = {
          iterations,
          salt: Buffer.from(salt),
          storedKey: Buffer.from(sk),
          serverKey: Buffer.from(svk),
        };
        const r = parseScramSecret(formatScramSecret(s));
        assert.ok(r.ok);
        assert.deepEqual(r.value, s);
      },
    ),
  );
  fc.assert(fc.property(fc.string(), (s) => void parseScramSecret('SCRAM-SHA-256$' + s)));
});
