/**
 * fast-check generators shared by the SQL tests: arbitrary text in several flavours, and text
 * built from the fragments that switch the lexer between states (quotes, dollar quotes, comment
 * markers, newlines, semicolons), which is where a hand-written scanner goes wrong.
 */
import fc from 'fast-check';

/** Any UTF-16 code unit, lone surrogates included. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n));

export const anyText: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: codeUnit }),
);

const FRAGMENTS = [
  "'",
  '"',
  '$$',
  '$a$',
  '$1',
  '/*',
  '*/',
  '--',
  '\n',
  ';',
  '(',
  ')',
  '\\',
  "E'",
  'U&"',
  "''",
  ' ',
  'set ',
  'x',
  'é',
  '::',
  '=',
  '-',
  '.',
  '0',
];

/** Text mixing the state-changing fragments with a little arbitrary text. */
export const sqlishText: fc.Arbitrary<string> = fc
  .array(fc.oneof(fc.constantFrom(...FRAGMENTS), fc.string({ maxLength: 3 })), { maxLength: 40 })
  .map((parts) => parts.join(''));
