/**
 * `pgscale agent` and `pgscale proxy --cluster` refuse what cannot work with a message naming
 * the problem, before anything starts (no network namespaces needed): a cluster on the embedded
 * store, a host no node is on, an unknown option.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from './harness.js';

describe('pgscale agent and proxy --cluster: bad input', () => {
  const dir = tempDir('pgscale-agent-cli-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const config = (store: string) => {
    const file = join(dir, `${store}.yaml`);
    writeFileSync(
      file,
      `cluster:
  name: badin
  id: badin-${process.pid}
ha:
  store: ${store}
  etcd:
    endpoints: [http://127.0.0.1:9]
    timeout_ms: 200
groups:
  - nodes:
      - { name: a, host: 10.255.255.1, port: 5432 }
      - { name: b, host: 10.255.255.2, port: 5432 }
`,
    );
    return file;
  };

  test('the embedded store: agents need etcd', async () => {
    const r = await cli(['agent', '-c', config('embedded'), '--host', '10.255.255.1']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /pgscale agent needs ha\.store: etcd/);
    assert.equal(existsSync(join(dir, 'data')), false, 'nothing was created');
  });

  test('a host no node is on is named, with the hosts that are', async () => {
    const r = await cli(['agent', '-c', config('etcd'), '--host', '10.9.9.9']);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /no node of .* is on host "10\.9\.9\.9" \(the nodes' hosts: 10\.255\.255\.1, 10\.255\.255\.2\)/,
    );
  });

  test('without --host, no address of this machine is a node host', async () => {
    const r = await cli(['agent', '-c', config('etcd')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /none of the nodes' hosts .* is an address of this machine; name it with --host/);
  });

  test('an unknown option names the command help', async () => {
    const r = await cli(['agent', '--hots', 'x']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /see pgscale agent --help/);
  });

  test('proxy --cluster on the embedded store is refused', async () => {
    const r = await cli(['proxy', '-c', config('embedded'), '--cluster']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--cluster follows a cluster over several hosts, which needs ha\.store: etcd/);
  });
});
