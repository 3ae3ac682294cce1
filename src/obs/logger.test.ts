import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { childLogger, createLogger, redactSecrets, REDACTED, textDestination } from './logger.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString('utf8');
      cb();
    },
  });
  return {
    stream,
    text: () => text,
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

test('child loggers carry component, node and group, and their bindings are redacted too', () => {
  const c = capture();
  const log = childLogger(createLogger({ destination: c.stream }), {
    component: 'supervisor',
    node: 's0n1',
    group: 0,
  });
  log.child({ secret: 'pw-binding' }).warn('node exited');
  const line = c.lines()[0]!;
  assert.equal(line.component, 'supervisor');
  assert.equal(line.node, 's0n1');
  assert.equal(line.group, 0);
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

test('a key bound once (base, child) and given again never appears twice in a line', () => {
  const c = capture();
  const root = createLogger({ destination: c.stream, base: { cluster: 'c1' } });
  root.info({ cluster: 'c1', config: 'x.yaml' }, 'starting');
  const ha = childLogger(childLogger(root, { component: 'ha', cluster: 'c1' }), {
    component: 'ha',
    group: 0,
  });
  ha.info({ component: 'ha', group: 0, node: 's0n1' }, 'acting');
  root.info('plain');
  for (const raw of c.text().trim().split('\n')) {
    for (const key of ['cluster', 'component', 'group', 'pid']) {
      const n = raw.split(`"${key}":`).length - 1;
      assert.ok(n <= 1, `${key} ${n} times in ${raw}`);
    }
  }
  const [a, b, p] = c.lines();
  assert.equal(a!.cluster, 'c1');
  assert.equal(a!.config, 'x.yaml');
  assert.equal(b!.component, 'ha');
  assert.equal(b!.node, 's0n1');
  assert.equal(b!.cluster, 'c1');
  assert.equal(p!.msg, 'plain');
});

test('the text destination writes time, level and message, secrets still redacted', () => {
  let out = '';
  const log = createLogger({ destination: textDestination({ write: (s: string) => (out += s) }) });
  log.warn({ password: 'pw-x' }, 'warning: logfile is ignored');
  log.error({ err: new Error('boom') }, 'reload failed');
  const [a, b] = out.trim().split('\n');
  assert.match(a!, /^\d{4}-\d\d-\d\dT\S+ WARN warning: logfile is ignored$/);
  assert.match(b!, /^\S+ ERROR reload failed: boom$/);
  assert.ok(!out.includes('pw-x'));
});
