import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { ScramClient } from './scram-client.js';
import { ScramServer } from './scram-server.js';
import { buildScramSecret } from './scram-secret.js';

const nonce = 'clientNonce0123456789abc';
const salt = Buffer.alloc(16, 3).toString('base64');

function started(options: ConstructorParameters<typeof ScramClient>[1] = {}): ScramClient {
  const c = new ScramClient({ password: 'secret' }, { clientNonce: nonce, ...options });
  const first = c.clientFirst().toString();
  assert.equal(first, `n,,n=,r=${nonce}`, 'libpq form: empty user, gs2 n');
  return c;
}

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

void test('accepts a PostgreSQL-shaped server-first and produces c=biws', async () => {
  const r = await started().handleServerFirst(
    b(`r=${nonce}${randomBytes(18).toString('base64')},s=${salt},i=4096`),
  );
  assert.ok(r.ok);
  assert.match(
    r.value.toString(),
    /^c=biws,r=clientNonce0123456789abc[A-Za-z0-9+/]{24},p=[A-Za-z0-9+/]{43}=$/,
  );
});

const badServerFirst: [string, string][] = [
  ['nonce not extending ours', `r=other${nonce}x,s=${salt},i=4096`],
  ['nonce equal to ours', `r=${nonce},s=${salt},i=4096`],
  ['100 kB nonce', `r=${nonce}${'x'.repeat(100_000)},s=${salt},i=4096`],
  ['non-printable nonce', `r=${nonce}\u00e9,s=${salt},i=4096`],
  ['bad base64 salt', `r=${nonce}x,s=***,i=4096`],
  ['empty salt', `r=${nonce}x,s=,i=4096`],
  ['zero iterations', `r=${nonce}x,s=${salt},i=0`],
  ['huge iterations', `r=${nonce}x,s=${salt},i=2000000000`],
  ['non-numeric iterations', `r=${nonce}x,s=${salt},i=12a`],
  ['m= extension', `m=x,r=${nonce}x,s=${salt},i=4096`],
  ['garbage at end', `r=${nonce}x,s=${salt},i=4096,z=1`],
  ['missing i', `r=${nonce}x,s=${salt}`],
];

for (const [what, message] of badServerFirst) {
  void test(`server-first rejected: ${what}`, async () => {
    const c = started();
    const r = await c.handleServerFirst(b(message));
    assert.equal(r.ok, false);
    assert.equal(c.state, 'failed');
  });
}

void test('maxIterations is configurable', async () => {
  const r = await started({ maxIterations: 1000 }).handleServerFirst(b(`r=${nonce}x,s=${salt},i=4096`));
  assert.equal(r.ok, false);
});

async function exchange(
  client: ScramClient,
  server: ScramServer,
): Promise<{ ok: boolean; serverFinal?: Buffer }> {
  const sf = server.handleInitialResponse('SCRAM-SHA-256', client.clientFirst());
  assert.ok(sf.ok);
  const cf = await client.handleServerFirst(sf.value);
  if (!cf.ok) return { ok: false };
  const fin = server.handleResponse(cf.value);
  if (!fin.ok) return { ok: false };
  return { ok: client.handleServerFinal(fin.value).ok, serverFinal: fin.value };
}

const mockKey = Buffer.alloc(32, 5);

void test('server-final: forged signature, e= error, garbage, and out-of-order calls fail', async () => {
  const secret = await buildScramSecret('secret');
  for (const final of [
    'v=' + Buffer.alloc(32).toString('base64'),
    'e=invalid-proof',
    'v=@@',
    'x=1',
    'v=AAAA,z=1',
  ]) {
    const c = new ScramClient({ password: 'secret' });
    const s = new ScramServer({ user: 'u', secret, mockKey });
    const sf = s.handleInitialResponse('SCRAM-SHA-256', c.clientFirst());
    assert.ok(sf.ok);
    assert.ok((await c.handleServerFirst(sf.value)).ok);
    assert.equal(c.handleServerFinal(b(final)).ok, false, final);
  }
  const fresh = new ScramClient({ password: 'x' });
  assert.equal(fresh.handleServerFinal(b('v=AAAA')).ok, false);
  assert.equal(
    (await fresh.handleServerFirst(b(`r=${nonce}x,s=${salt},i=1`))).ok,
    false,
    'before clientFirst',
  );
});

void test('wrong password: the server refuses; the client never sees a valid signature', async () => {
  const secret = await buildScramSecret('right');
  const r = await exchange(
    new ScramClient({ password: 'wrong' }),
    new ScramServer({ user: 'u', secret, mockKey }),
  );
  assert.equal(r.ok, false);
});

void test('stored keys whose salt or iterations differ from the server cannot log in', async () => {
  const secret = await buildScramSecret('pw');
  const other = await buildScramSecret('pw'); // fresh random salt
  const keys = {
    clientKey: Buffer.alloc(32),
    serverKey: other.serverKey,
    salt: other.salt,
    iterations: other.iterations,
  };
  const c = new ScramClient(keys);
  const s = new ScramServer({ user: 'u', secret, mockKey });
  const sf = s.handleInitialResponse('SCRAM-SHA-256', c.clientFirst());
  assert.ok(sf.ok);
  const r = await c.handleServerFirst(sf.value);
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.message, /do not match/);
});

void test('usernames are saslname-escaped', () => {
  const c = new ScramClient({ password: 'p' }, { username: 'a,b=c', clientNonce: 'n' });
  assert.equal(c.clientFirst().toString(), 'n,,n=a=2Cb=3Dc,r=n');
});

void test('property: random server-first bytes never throw', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
        fc.string().map((s) => b(`r=${nonce}${s}`)),
      ),
      async (data) => {
        const r = await started({ maxIterations: 10 }).handleServerFirst(data);
        if (!r.ok) assert.match(r.sqlstate, /^(08P01|28000)$/);
      },
    ),
    { numRuns: 300 },
  );
});
