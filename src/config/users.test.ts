import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './load.js';
import { INIT_DEFAULTS, renderConfig } from './template.js';
import { appDatabases, appUsers, homeGroup } from './users.js';

const base = renderConfig({ ...INIT_DEFAULTS, groups: 2, replicas: 0 });
const load = (extra: string) => parseConfig(`${base}\n${extra}`, '/x/pgscale.yaml').config;
const refused = (extra: string, message: RegExp) =>
  assert.throws(
    () => load(extra),
    (e: Error) => message.test(e.message),
  );

test('app: stays the default user and database; users: and databases: add to it', () => {
  const c = load(`users:
  reporting: {databases: [analytics], pool_size: 3, pool_mode: session}
  etl: {password_file: etl.pw, max_user_connections: 4}
databases:
  analytics: {owner: etl, group: 1, pool_size: 7}
`);
  assert.deepEqual(
    appUsers(c).map((u) => [
      u.name,
      u.databases,
      u.poolSize,
      u.poolMode,
      u.maxUserConnections,
      u.passwordFile,
    ]),
    [
      ['app', ['app'], undefined, undefined, 0, null],
      ['reporting', ['analytics'], 3, 'session', 0, null],
      ['etl', ['analytics'], undefined, undefined, 4, 'etl.pw'],
    ],
  );
  assert.deepEqual(
    appDatabases(c).map((d) => [d.name, d.owner, d.group, d.poolSize, d.declared]),
    [
      ['app', 'app', 0, undefined, false],
      ['analytics', 'etl', 1, 7, true],
    ],
  );
  assert.equal(homeGroup(c, 'analytics'), 1);
});

test('a password in the file is refused, naming password_file and secrets.json', () => {
  refused(
    'users:\n  bob: {password: hunter2}\n',
    /users\.bob\.password: passwords are never written in pgscale\.yaml.*password_file/,
  );
});

test('superuser: true is refused; false is accepted', () => {
  refused('users:\n  bob: {superuser: true}\n', /users\.bob\.superuser: pgscale creates no superusers/);
  assert.ok(load('users:\n  bob: {superuser: false}\n').users.bob);
});

test("a database's group contradicting groups[].databases is refused, naming both", () => {
  const text = base.replace(
    /(groups:\n(?:.*\n)*?)( {2}- nodes:)/,
    '$1  - databases: [analytics]\n    nodes:',
  );
  assert.throws(
    () => parseConfig(`${text}\ndatabases:\n  analytics: {group: 1}\n`, '/x/pgscale.yaml'),
    /databases\.analytics\.group: 1 contradicts groups\[0\]\.databases, which homes "analytics" in group 0/,
  );
});

test('an owner, a listed database or a group nobody declared is refused, each by its key', () => {
  refused(
    'databases:\n  shop: {owner: nobody}\n',
    /databases\.shop\.owner: "nobody" is not declared under users:/,
  );
  refused('users:\n  bob: {databases: [nowhere]}\n', /users\.bob\.databases\[0\]: "nowhere" is not declared/);
  refused('databases:\n  shop: {group: 5}\n', /databases\.shop\.group: 5 does not exist \(groups: has 2/);
  refused(
    'databases:\n  app: {owner: bob}\nusers:\n  bob: {}\n',
    /databases\.app\.owner: "app" is app\.database, owned by app\.user "app"/,
  );
});

test('reserved names are refused', () => {
  refused('users:\n  replicator: {}\n', /users\.replicator: "replicator" is a role pgscale keeps/);
  refused('users:\n  postgres: {}\n', /users\.postgres: "postgres" is a role pgscale keeps/);
  refused('users:\n  pgscale_auth: {}\n', /users\.pgscale_auth: .* keeps/);
  refused('databases:\n  pgbouncer: {}\n', /databases\.pgbouncer: "pgbouncer" is reserved/);
});
