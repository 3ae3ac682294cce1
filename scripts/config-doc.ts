// Rewrites the generated tables of docs/configuration.md from the config schema (src/config/
// doc-table.ts); src/config/doc-table.test.ts fails while the doc and the schema disagree.
// Run: node --import tsx scripts/config-doc.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { updateDoc } from '../src/config/doc-table.js';

const file = new URL('../docs/configuration.md', import.meta.url);
const before = readFileSync(file, 'utf8');
const after = updateDoc(before);
writeFileSync(file, after);
console.log(before === after ? 'docs/configuration.md is up to date' : 'docs/configuration.md updated');
