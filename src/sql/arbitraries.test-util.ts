/**
 * fast-check generators shared by the SQL tests: arbitrary text, and text made of the fragments
 * that switch a PostgreSQL lexer between its states. Test-only (excluded from the build).
 */
import fc from 'fast-check';

// fc.string() is ASCII-ish; 'binary' is v4's replacement for fullUnicodeString; the last adds lone surrogates.
export const anyText = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n)) }),
);

export const sqlishText = fc
  .array(
    fc.oneof(
      fc.constantFrom(
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
        ' ',
      ),
      fc.constantFrom('set ', 'execute ', 'x', 'é', '::', '=', '-', '.', '0', '😀'),
      fc.string({ maxLength: 3 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''));
