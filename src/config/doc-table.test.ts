import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { proxySchema } from './schema.js';
import { keyRows, updateDoc } from './doc-table.js';

test('docs/configuration.md documents every proxy key exactly as the schema has it', () => {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  assert.ok(
    updateDoc(doc) === doc,
    'docs/configuration.md differs from the config schema: run `node --import tsx scripts/config-doc.ts`',
  );
});

test('every proxy key has a description and appears in the table', () => {
  const rows = keyRows(proxySchema, 'proxy');
  for (const r of rows) assert.ok(r.meaning.length > 0, `${r.key} has no .describe()`);
  const keys = new Set(rows.map((r) => r.key));
  for (const k of Object.keys(proxySchema.shape)) {
    assert.ok(
      [...keys].some((x) => x === `proxy.${k}` || x.startsWith(`proxy.${k}.`)),
      k,
    );
  }
  assert.ok(keys.has('proxy.tls.cert_file'));
  assert.ok(keys.has('proxy.databases.<name>.host'));
});
