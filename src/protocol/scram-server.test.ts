import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { ScramServer, mockScramSecret } from './scram-server.js';
import { ScramClient } from './scram-client.js';
import type { ScramSecret } from './scram-secret.js';
import { buildScramSecret, formatScramSecret } from './scram-secret.js';

// RFC 7677 §3 example: user "user", password "pencil" (https://www.rfc-editor.org/rfc/rfc7677#section-3).
// The server nonce there is "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"; the published proof and signature
// only verify with exactly that nonce, so a mistyped copy of it makes this test fail.
const RFC = {
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const mockKey = Buffer.alloc(32, 9);
let rfcSecret: ScramSecret | undefined;
async function secret(): Promise<ScramSecret> {
  rfcSecret ??= await buildScramSecret('pencil', { salt: RFC.salt, iterations: 4096 });
  return rfcSecret;
}

async function server(
  overrides: Partial<ConstructorParameters<typeof ScramServer>[0]> = {},
): Promise<ScramServer> {
  return new ScramServer({
    user: 'user',
    secret: await secret(),
    mockKey,
    serverNonce: RFC.serverNonce,
    ...overrides,
  });
}

function b(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

void test('RFC 7677 exchange: our client and server produce the exact test vector', async () => {
  const srv = await server();
  const cli = new ScramClient({ password: 'pencil' }, { username: 'user', clientNonce: RFC.clientNonce });
  assert.deepEqual(srv.mechanisms(), ['SCRAM-SHA-256']);
  const first = cli.clientFirst();
  assert.equal(first.toString(), RFC.clientFirst);
  const serverFirst = srv.handleInitialResponse(cli.mechanism, first);
  assert.ok(serverFirst.ok);
  assert.equal(serverFirst.value.toString(), RFC.serverFirst);
  const clientFinal = await cli.handleServerFirst(serverFirst.value);
  assert.ok(clientFinal.ok);
  assert.equal(clientFinal.value.toString(), RFC.clientFinal);
  const serverFinal = srv.handleResponse(clientFinal.value);
  assert.ok(serverFinal.ok);
  assert.equal(serverFinal.value.toString(), RFC.serverFinal);
  assert.deepEqual(cli.handleServerFinal(serverFinal.value), { ok: true, value: undefined });
  assert.equal(srv.state, 'succeeded');
  assert.equal(cli.state, 'succeeded');
});

void test('the recovered ClientKey logs in to a server holding the same secret (pass-through)', async () => {
  const s = await secret();
  const front = await server();
  assert.ok(front.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst)).ok);
  assert.ok(front.handleResponse(b(RFC.clientFinal)).ok);
  const clientKey = front.clientKey;
  assert.ok(clientKey);
  const back = new ScramServer({ user: 'user', secret: s, mockKey });
  const cli = new ScramClient({ clientKey, serverKey: s.serverKey, salt: s.salt, iterations: s.iterations });
  const sf = back.handleInitialResponse('SCRAM-SHA-256', cli.clientFirst());
  assert.ok(sf.ok);
  const cf = await cli.handleServerFirst(sf.value);
  assert.ok(cf.ok);
  const fin = back.handleResponse(cf.value);
  assert.ok(fin.ok);
  assert.ok(cli.handleServerFinal(fin.value).ok);
});

void test('interop: the pg driver SCRAM client authenticates against our server', async () => {
  interface PgSession {
    response: string;
  }
  const sasl = createRequire(import.meta.url)('pg/lib/crypto/sasl.js') as {
    startSession(mechanisms: string[]): PgSession;
    continueSession(session: PgSession, password: string, serverData: string): Promise<void>;
    finalizeSession(session: PgSession, serverData: string): void;
  };
  const srv = new ScramServer({ user: 'user', secret: await buildScramSecret('pässwörd ﬁ'), mockKey });
  const session = sasl.startSession(srv.mechanisms());
  const sf = srv.handleInitialResponse('SCRAM-SHA-256', b(session.response));
  assert.ok(sf.ok);
  await sasl.continueSession(session, 'pässwörd ﬁ', sf.value.toString());
  const fin = srv.handleResponse(b(session.response));
  assert.ok(fin.ok, JSON.stringify(fin));
  sasl.finalizeSession(session, fin.value.toString()); // throws if our signature were wrong
});

function assertFailure(r: { ok: boolean; sqlstate?: string }, sqlstate: string): void {
  assert.equal(r.ok, false);
  assert.equal(r.sqlstate, sqlstate);
}

void test('wrong proof → 28P01 with the generic message', async () => {
  const srv = await server();
  assert.ok(srv.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst)).ok);
  const bad = RFC.clientFinal.replace('p=dHzb', 'p=dHzc');
  const r = srv.handleResponse(b(bad));
  assertFailure(r, '28P01');
  if (!r.ok) assert.equal(r.message, 'password authentication failed for user "user"');
  assert.equal(srv.state, 'failed');
  assert.equal(srv.clientKey, undefined);
});

void test('proof replayed into a session with a different server nonce → 28P01', async () => {
  const srv = await server({ serverNonce: 'another-nonce-0123456789' });
  assert.ok(srv.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst)).ok);
  // The recorded client-final, as is (old nonce) …
  assertFailure(srv.handleResponse(b(RFC.clientFinal)), '28P01');
  // … or with the nonce fixed up to this session's: the proof no longer matches.
  const srv2 = await server({ serverNonce: 'another-nonce-0123456789' });
  assert.ok(srv2.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst)).ok);
  const fixed = RFC.clientFinal.replace(RFC.serverNonce, 'another-nonce-0123456789');
  assertFailure(srv2.handleResponse(b(fixed)), '28P01');
});

void test('unknown user: same-looking exchange (stable mock salt), same 28P01 message', async () => {
  const known = await server({ user: 'alice' });
  const unknown = new ScramServer({
    user: 'mallory',
    secret: undefined,
    mockKey,
    serverNonce: RFC.serverNonce,
  });
  const again = new ScramServer({
    user: 'mallory',
    secret: undefined,
    mockKey,
    serverNonce: RFC.serverNonce,
  });
  const a = known.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst));
  const u = unknown.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst));
  const u2 = again.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst));
  assert.ok(a.ok && u.ok && u2.ok);
  const shape = (s: Buffer): string => s.toString().replace(/s=[^,]+/, 's=SALT');
  assert.equal(shape(u.value), shape(a.value));
  assert.equal(u.value.toString(), u2.value.toString(), 'mock salt is deterministic per user');
  assert.equal(mockScramSecret(mockKey, 'mallory').salt.length, 16);
  const ra = known.handleResponse(b(RFC.clientFinal.replace('p=dHzb', 'p=dHzc')));
  const ru = unknown.handleResponse(b(RFC.clientFinal));
  assert.ok(!ra.ok && !ru.ok);
  assert.equal(ru.sqlstate, '28P01');
  assert.equal(ru.message.replace('mallory', 'alice'), ra.message);
});

const malformedClientFirst: [string, string, string][] = [
  ['m= extension', 'n,,m=ext,n=user,r=abc', '0A000'],
  ['missing n=', 'n,,r=abc', '08P01'],
  ['missing r=', 'n,,n=user', '08P01'],
  ['empty nonce', 'n,,n=user,r=', '08P01'],
  ['non-printable nonce', 'n,,n=user,r=a\u00e9b', '08P01'],
  ['bad saslname escape', 'n,,n=us=er,r=abc', '08P01'],
  ['authzid', 'n,a=admin,n=user,r=abc', '0A000'],
  ['bad gs2 flag', 'x,,n=user,r=abc', '08P01'],
  ['p= without PLUS advertised', 'p=tls-server-end-point,,n=user,r=abc', '08P01'],
  ['huge nonce', `n,,n=user,r=${'a'.repeat(1000)}`, '08P01'],
  ['huge message', `n,,n=${'u'.repeat(5000)},r=abc`, '08P01'],
  ['empty', '', '08P01'],
];

for (const [what, message, sqlstate] of malformedClientFirst) {
  void test(`client-first rejected: ${what}`, async () => {
    const srv = await server();
    assertFailure(srv.handleInitialResponse('SCRAM-SHA-256', b(message)), sqlstate);
    assert.equal(srv.state, 'failed');
  });
}

void test('libpq (n=) and pg (n=*) user forms, and y,, without PLUS, are accepted', async () => {
  for (const first of ['n,,n=,r=abc', 'n,,n=*,r=abc', 'y,,n=,r=abc', 'n,,n=a=2Cb,r=abc,x=ext']) {
    assert.ok((await server()).handleInitialResponse('SCRAM-SHA-256', b(first)).ok, first);
  }
});

void test('y,, while PLUS is advertised is a downgrade and fails', async () => {
  const srv = await server({ channelBinding: { type: 'tls-server-end-point', data: Buffer.alloc(32, 1) } });
  assert.deepEqual(srv.mechanisms(), ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
  assertFailure(srv.handleInitialResponse('SCRAM-SHA-256', b('y,,n=,r=abc')), '08P01');
});

void test('PLUS with channel binding data: matching c= succeeds, wrong data fails', async () => {
  const cb = { type: 'tls-server-end-point' as const, data: Buffer.alloc(32, 1) };
  const s = await secret();
  const run = async (cbData: Buffer): Promise<boolean> => {
    const srv = new ScramServer({ user: 'u', secret: s, mockKey, channelBinding: cb });
    const bare = 'n=,r=clientnonce';
    const gs2 = 'p=tls-server-end-point,,';
    const sf = srv.handleInitialResponse('SCRAM-SHA-256-PLUS', b(gs2 + bare));
    assert.ok(sf.ok);
    const { createHmac, createHash, pbkdf2Sync } = await import('node:crypto');
    const nonce = /r=([^,]+)/.exec(sf.value.toString())![1]!;
    const without = `c=${Buffer.concat([b(gs2), cbData]).toString('base64')},r=${nonce}`;
    const salted = pbkdf2Sync('pencil', s.salt, s.iterations, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const stored = createHash('sha256').update(clientKey).digest();
    const sig = createHmac('sha256', stored).update(`${bare},${sf.value.toString()},${without}`).digest();
    const proof = Buffer.from(clientKey.map((x, i) => x ^ sig[i]!));
    return srv.handleResponse(b(`${without},p=${proof.toString('base64')}`)).ok;
  };
  assert.equal(await run(cb.data), true);
  assert.equal(await run(Buffer.alloc(32, 2)), false);
});

void test('mechanism and gs2 flag must agree; unknown mechanism fails', async () => {
  assertFailure((await server()).handleInitialResponse('SCRAM-SHA-256-PLUS', b(RFC.clientFirst)), '08P01');
  assertFailure((await server()).handleInitialResponse('PLAIN', b(RFC.clientFirst)), '08P01');
  const cb = { type: 'tls-server-end-point' as const, data: Buffer.alloc(32) };
  assertFailure(
    (await server({ channelBinding: cb })).handleInitialResponse('SCRAM-SHA-256-PLUS', b(RFC.clientFirst)),
    '08P01',
  );
});

void test('out-of-order messages: SASLResponse first, repeated SASLInitialResponse, null data', async () => {
  assertFailure((await server()).handleResponse(b(RFC.clientFinal)), '08P01');
  const srv = await server();
  assert.ok(srv.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst)).ok);
  assertFailure(srv.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst)), '08P01');
  assertFailure((await server()).handleInitialResponse('SCRAM-SHA-256', null), '08P01');
});

const malformedClientFinal: [string, string][] = [
  ['bad base64 proof', RFC.clientFinal.replace(/p=.*/, 'p=!!notbase64')],
  ['short proof', RFC.clientFinal.replace(/p=.*/, 'p=AAAA')],
  ['wrong channel binding', RFC.clientFinal.replace('c=biws', 'c=eSws')],
  ['bad base64 channel binding', RFC.clientFinal.replace('c=biws', 'c=biw')],
  ['garbage after proof', RFC.clientFinal + ',x=1'],
  ['missing proof', RFC.clientFinal.replace(/,p=.*/, '')],
  ['attributes out of order', RFC.clientFinal.replace('c=biws,r=', 'r=').replace(',p=', ',c=biws,p=')],
];

for (const [what, message] of malformedClientFinal) {
  void test(`client-final rejected: ${what}`, async () => {
    const srv = await server();
    assert.ok(srv.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst)).ok);
    const r = srv.handleResponse(b(message));
    assert.equal(r.ok, false);
    assert.equal(srv.state, 'failed');
  });
}

void test('property: random client-first and client-final bytes never throw', async () => {
  const s = await secret();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.string({ maxLength: 120 }), (raw, text) => {
      for (const data of [Buffer.from(raw), b('n,,' + text), b(text)]) {
        const srv = new ScramServer({ user: 'u', secret: s, mockKey });
        const first = srv.handleInitialResponse('SCRAM-SHA-256', data);
        if (!first.ok) assert.match(first.sqlstate, /^(08P01|0A000)$/);
        const srv2 = new ScramServer({ user: 'u', secret: s, mockKey });
        assert.ok(srv2.handleInitialResponse('SCRAM-SHA-256', b(RFC.clientFirst)).ok);
        const fin = srv2.handleResponse(data);
        assert.equal(fin.ok, false);
      }
    }),
    { numRuns: 500 },
  );
});

void test('formatScramSecret of the RFC secret', async () => {
  assert.match(
    formatScramSecret(await secret()),
    /^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$/,
  );
});
