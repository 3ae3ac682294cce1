import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { childLogger, createLogger, redactSecrets, REDACTED } from './logger.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString('utf8');
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

test('secret-named keys are logged as [Redacted], at any depth and in any letter case', () => {
  const c = capture();
  const log = createLogger({ destination: c.stream });
  log.info(
    {
      password: 'pw-top',
      user: 'app',
      conn: { host: 'h', passwd: 'pw-passwd', nested: { deeper: { deepest: { secret: 'pw-deep' } } } },
      headers: { Authorization: 'Bearer pw-auth', accept: 'text/plain' },
      list: [{ token: 'pw-token' }, { TOKEN: 'pw-upper' }],
    },
    'connecting',
  );
  const text = JSON.stringify(c.lines());
  for (const v of ['pw-top', 'pw-passwd', 'pw-deep', 'pw-auth', 'pw-token', 'pw-upper']) {
    assert.ok(!text.includes(v), `${v} leaked: ${text}`);
  }
  const line = c.lines()[0]!;
  assert.equal(line.password, REDACTED);
  assert.equal(line.user, 'app');
  assert.deepEqual(line.headers, { Authorization: REDACTED, accept: 'text/plain' });
  assert.deepEqual(line.list, [{ token: REDACTED }, { TOKEN: REDACTED }]);
  assert.equal(
    (line.conn as { nested: { deeper: { deepest: { secret: string } } } }).nested.deeper.deepest.secret,
    REDACTED,
  );
  assert.equal(line.msg, 'connecting');
});

test('child loggers carry component, node and shard, and their bindings are redacted too', () => {
  const c = capture();
  const log = childLogger(createLogger({ destination: c.stream }), {
    component: 'supervisor',
    node: 's0n1',
    shard: 0,
  });
  log.child({ secret: 'pw-binding' }).warn('node exited');
  const line = c.lines()[0]!;
  assert.equal(line.component, 'supervisor');
  assert.equal(line.node, 's0n1');
  assert.equal(line.shard, 0);
  assert.equal(line.secret, REDACTED);
  assert.equal(line.level, 40);
});

test('redactSecrets copies only what changes and survives cycles', () => {
  const clean = { a: 1, b: [1, 2, { c: 'x' }] };
  assert.equal(redactSecrets(clean), clean);
  const cyclic: Record<string, unknown> = { password: 'p' };
  cyclic.self = cyclic;
  const r = redactSecrets(cyclic);
  assert.equal(r.password, REDACTED);
  assert.equal(cyclic.password, 'p', 'the original is not modified');
  const err = new Error('boom');
  assert.equal(redactSecrets({ err }).err, err);
});
