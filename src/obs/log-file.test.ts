import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RotatingLogFile, fdIsFile } from './log-file.js';
import { createLogger } from './logger.js';

test('the log rotates by size and keeps N files, newest first; no line is lost or split', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgscale-log-'));
  try {
    const file = join(dir, 'controller.log');
    const dest = new RotatingLogFile(file, { maxBytes: 4096, keep: 3 });
    const log = createLogger({ destination: dest, level: 'info' });
    for (let i = 0; i < 400; i++) log.info({ i }, 'x'.repeat(50));
    dest.close();
    assert.ok(dest.rotations >= 5, `${dest.rotations} rotations`);
    assert.ok(!existsSync(`${file}.4`), 'only 3 rotated files kept');
    const parts = [`${file}.3`, `${file}.2`, `${file}.1`, file].map((f) => readFileSync(f, 'utf8'));
    for (const p of parts.slice(0, 3))
      assert.ok(p.length >= 4096 && p.length < 4096 + 200, `${p.length} bytes`);
    const ids = parts
      .join('')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { i: number }).i);
    // The newest lines, consecutive and in order up to the last one.
    assert.equal(ids.at(-1), 399);
    assert.deepEqual(
      ids,
      ids.map((_, k) => ids[0]! + k),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('after a rotation, another writer of the same file (stderr) keeps writing to the live file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgscale-log-'));
  try {
    const file = join(dir, 'controller.log');
    const other = openSync(file, 'a');
    assert.ok(fdIsFile(other, file));
    assert.ok(!fdIsFile(other, join(dir, 'nothing.log')));
    const dest = new RotatingLogFile(file, { maxBytes: 100, keep: 1 });
    dest.write(`${'a'.repeat(120)}\n`);
    assert.equal(dest.rotations, 1);
    writeSync(other, 'from stderr\n');
    dest.write('after\n');
    closeSync(other);
    dest.close();
    assert.equal(readFileSync(file, 'utf8'), 'from stderr\nafter\n');
    assert.equal(readFileSync(`${file}.1`, 'utf8'), `${'a'.repeat(120)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
