import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ownCpuSeconds, Phases, timingLine } from './phases.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

test('phases: parts timed inside a phase go under it, in order; the value passes through', async () => {
  const p = new Phases();
  const v = await p.time('a', async () => {
    await p.part('a1', tick);
    return p.part('a2', async () => {
      await tick();
      return 42;
    });
  });
  await p.time('b', tick);
  assert.equal(v, 42);
  assert.deepEqual(
    p.list.map((x) => [x.name, x.parts?.map((q) => q.name)]),
    [
      ['a', ['a1', 'a2']],
      ['b', undefined],
    ],
  );
  assert.ok(p.list.every((x) => x.seconds > 0));
});

test('phases: a phase that throws is still timed', async () => {
  const p = new Phases();
  await assert.rejects(
    p.time('boom', async () => {
      await tick();
      throw new Error('x');
    }),
  );
  assert.equal(p.list[0]?.name, 'boom');
});

test('the timing line names every phase and part, the load at both ends and the CPU time', () => {
  const line = timingLine({
    totalSeconds: 84.2,
    loadAverage: { start: 0.4, end: 2.1 },
    cpuSeconds: { demo: 30.5, nodes: 22.25 },
    phases: [
      { name: 'cluster start', seconds: 6.5 },
      {
        name: 'read-scaling',
        seconds: 14,
        parts: [
          { name: 'primary alone', seconds: 4.1 },
          { name: 'proxy + 1 replica', seconds: 4.2 },
        ],
      },
    ],
  });
  assert.equal(
    line,
    'Timing: 84 s in all, load average 0.4 at the start and 2.1 at the end; CPU used by the demo: 31 s ' +
      '(demo, controller, proxies) + 22 s (PostgreSQL nodes). cluster start 6.5 s; read-scaling 14 s ' +
      '(primary alone 4.1 s, proxy + 1 replica 4.2 s).',
  );
  assert.ok(!line.includes('\n'));
});

test('own CPU time is positive', () => {
  assert.ok(ownCpuSeconds() > 0);
});
