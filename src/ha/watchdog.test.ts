/**
 * The watchdog: the checks an agent makes at start, what it writes to the device, and when its
 * session arms, feeds and disarms it. This machine has no /dev/watchdog (no softdog module), so
 * the device is a plain file and its sysfs directory a temporary one: the kernel's side — reset
 * the host when the writes stop — is not exercised here.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeRef } from '../config/load.js';
import { ErrorCodes, PgscaleError } from '../errors.js';
import { createLogger } from '../obs/logger.js';
import { AgentSession } from './agent-session.js';
import { EmbeddedStore, embeddedStorePath } from './embedded-store.js';
import type { NodeFacts, NodeOps } from './node-ops.js';
import { Watchdog, hostWatchdog, watchdogTimeoutS } from './watchdog.js';

const log = createLogger({ level: 'silent' });
const root = mkdtempSync(join(tmpdir(), 'pgscale-watchdog-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A device file and its sysfs directory (watchdogN/timeout), with the device's timeout. */
function fakeDevice(timeoutS: number | null): { device: string; sysfs: string } {
  const dir = join(root, `d${n++}`);
  const name = `watchdog${n}`;
  mkdirSync(join(dir, 'sys', name), { recursive: true });
  if (timeoutS !== null) writeFileSync(join(dir, 'sys', name, 'timeout'), `${timeoutS}\n`);
  const device = join(dir, name);
  writeFileSync(device, '');
  return { device, sysfs: join(dir, 'sys') };
}

const setTimeoutIn =
  (sysfs: string) =>
  (device: string, seconds: number): void =>
    writeFileSync(join(sysfs, device.split('/').pop()!, 'timeout'), `${seconds}\n`);

describe('watchdog', () => {
  test('its timeout is the TTL less the guard margin, in whole seconds', () => {
    assert.equal(watchdogTimeoutS(10_000), 7); // margin 2.5 s
    assert.equal(watchdogTimeoutS(4_000), 3); // margin 1 s
    assert.equal(watchdogTimeoutS(2_000), 1);
  });

  test('a device whose timeout is too long gets a shorter one, then arms, feeds and disarms', () => {
    const { device, sysfs } = fakeDevice(60);
    const wd = hostWatchdog({ mode: 'automatic', device }, 10_000, log, {
      sysfs,
      setTimeout: setTimeoutIn(sysfs),
    });
    assert.ok(wd, 'the device works');
    assert.equal(readFileSync(join(sysfs, device.split('/').pop()!, 'timeout'), 'utf8').trim(), '7');
    assert.equal(wd.activate(), true);
    wd.keepalive();
    wd.keepalive();
    wd.disable();
    assert.equal(readFileSync(device, 'utf8'), '111V', 'armed with a keep-alive, fed twice, disarmed with V');
    assert.equal(wd.active, false);
    wd.keepalive(); // closed: nothing written
    assert.equal(readFileSync(device, 'utf8'), '111V');
  });

  test('required refuses to start without a working device, naming why; automatic goes without', () => {
    const missing = join(root, 'no-such-watchdog');
    assert.throws(
      () => hostWatchdog({ mode: 'required', device: missing }, 10_000, log),
      (e: unknown) =>
        e instanceof PgscaleError &&
        e.code === ErrorCodes.CONFIG_INVALID &&
        e.message.includes(missing) &&
        e.message.includes('required'),
    );
    assert.equal(hostWatchdog({ mode: 'automatic', device: missing }, 10_000, log), null);
    assert.equal(hostWatchdog({ mode: 'off', device: missing }, 10_000, log), null);

    const { device, sysfs } = fakeDevice(60);
    const refuse = () => {
      throw new Error('wdctl: cannot set timeout');
    };
    assert.throws(
      () => hostWatchdog({ mode: 'required', device }, 10_000, log, { sysfs, setTimeout: refuse }),
      /could not be set to 7 s \(wdctl: cannot set timeout\)/,
    );
    const unreadable = fakeDevice(null);
    assert.throws(
      () =>
        hostWatchdog({ mode: 'required', device: unreadable.device }, 10_000, log, {
          sysfs: unreadable.sysfs,
          setTimeout: () => undefined,
        }),
      /cannot be read/,
    );
  });

  test("an agent's session arms it while a local primary runs, feeds it at each renewal, and disarms it", async () => {
    const { device, sysfs } = fakeDevice(1);
    const wd = new Watchdog({ mode: 'required', device, sysfs, timeoutS: 1 }, log);
    const store = await EmbeddedStore.open(embeddedStorePath(join(root, `store-${n++}`)));
    const node = { name: 's0n0', host: 'h1' } as NodeRef;
    let facts: NodeFacts = {
      provisioned: true,
      standbyDir: false,
      needsRejoin: false,
      running: true,
      upstream: null,
    };
    const ops = { facts: () => facts } as unknown as NodeOps;
    const sessionWith = (watchdog: Watchdog | null) =>
      new AgentSession(
        store,
        ops,
        () => [node],
        {
          host: 'h1',
          ttlMs: 2000,
          keepAliveMs: 100,
          watchdog,
          info: { host: 'h1', pid: 1, started_at: '', version: 'test' },
        },
        log,
      );
    const session = sessionWith(null);
    try {
      await session.start();
      assert.equal(wd.active, false, 'not given to the session yet');
      await session.close();

      const armed = sessionWith(wd);
      await armed.start();
      assert.equal(wd.active, true, 'a primary runs here: armed at the first renewal');
      await sleep(600);
      assert.ok(wd.pings >= 3, `fed at each renewal (${wd.pings} keep-alives in 600 ms)`);
      facts = { ...facts, standbyDir: true }; // demoted: a standby now
      await sleep(400);
      assert.equal(wd.active, false, 'no primary here: disarmed');
      facts = { ...facts, standbyDir: false };
      await sleep(400);
      assert.equal(wd.active, true, 'a primary again: armed again');
      await armed.close();
      assert.equal(wd.active, false, 'a clean stop disarms it');
      assert.match(readFileSync(device, 'utf8'), /^1+V1+V$/);
    } finally {
      wd.disable();
      await store.close();
    }
  });
});
