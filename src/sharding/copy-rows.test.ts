import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { copyOptionsOf, type CopyOptions } from './copy-options.js';
import { BINARY_SIGNATURE, CopyRowSplitter, deEscapeText, type CopyKey } from './copy-rows.js';
import { loadParser, parseStatements } from '../sql/pg-parser.js';

function copyStmt(sql: string): Record<string, unknown> {
  const p = parseStatements(sql);
  assert.equal(p.kind, 'parsed');
  return (p.stmts[0] as { stmt: { CopyStmt: Record<string, unknown> } }).stmt.CopyStmt;
}

function options(sql: string): CopyOptions {
  const o = copyOptionsOf(copyStmt(sql));
  assert.ok(!('refused' in o), JSON.stringify(o));
  return o;
}

interface Split {
  header: string[];
  rows: string[];
  keys: (string | null)[];
  ended: boolean;
}

/** Splits `data` fed in the given pieces. */
function split(
  opts: CopyOptions,
  keyIndex: number | null,
  pieces: Buffer[],
  forced = { notNull: false, null: false },
): Split {
  const s = new CopyRowSplitter(opts, keyIndex, forced);
  const out: Split = { header: [], rows: [], keys: [], ended: false };
  const sink = {
    header: (b: Buffer) => out.header.push(b.toString('latin1')),
    row: (b: Buffer, k: CopyKey) => {
      out.rows.push(b.toString('latin1'));
      out.keys.push(
        k === null || k === 'default' ? k : k.format === 'text' ? k.text : k.bytes.toString('hex'),
      );
    },
  };
  for (const p of pieces) s.push(p, sink);
  s.end(sink);
  out.ended = s.ended;
  return out;
}

function chunks(data: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(data.subarray(prev, c));
    prev = c;
  }
  out.push(data.subarray(prev));
  return out;
}

/** A value as PostgreSQL's COPY TO writes it in text format. */
function textOut(v: string | null, delim: string): string {
  if (v === null) return '\\N';
  let o = '';
  for (const ch of v) {
    if (ch === '\\') o += '\\\\';
    else if (ch === '\n') o += '\\n';
    else if (ch === '\r') o += '\\r';
    else if (ch === '\t' && delim === '\t') o += '\\t';
    else if (ch === delim) o += `\\${ch}`;
    else o += ch;
  }
  return o;
}

/** A value as PostgreSQL's COPY TO writes it in CSV (quoted when it must be). */
function csvOut(v: string | null): string {
  if (v === null) return '';
  if (v === '' || /[",\r\n]/.test(v) || v === '\\.') return `"${v.replace(/"/g, '""')}"`;
  return v;
}

const value = fc.option(
  fc
    .array(fc.constantFrom('a', 'b', '1', ' ', ',', '\t', '"', '\\', '\n', '\r', '.', 'é', '😀', 'N'))
    .map((a) => a.join('')),
  { nil: null, freq: 6 },
);
const table = fc.array(fc.array(value, { minLength: 3, maxLength: 3 }), { minLength: 0, maxLength: 12 });

describe('COPY rows', () => {
  before(() => loadParser());

  test('text: rows and keys through any cut of the stream, NL and CRNL', () => {
    const opts = options('COPY t FROM STDIN');
    fc.assert(
      fc.property(
        table,
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.boolean(),
        fc.nat(2),
        (rows, cuts, crnl, key) => {
          const eol = crnl ? '\r\n' : '\n';
          const lines = rows.map((r) => r.map((v) => textOut(v, '\t')).join('\t') + eol);
          const data = Buffer.from(lines.join(''), 'utf8');
          const got = split(opts, key, chunks(data, cuts));
          assert.deepEqual(
            got.rows.map((r) => Buffer.from(r, 'latin1').toString('utf8')),
            lines,
          );
          assert.deepEqual(
            got.keys,
            rows.map((r) => r[key]!),
          );
        },
      ),
      { numRuns: 400 },
    );
  });

  test('csv: quoted newlines, doubled quotes, header, any cut', () => {
    const opts = options('COPY t FROM STDIN (FORMAT csv, HEADER true)');
    fc.assert(
      fc.property(
        table,
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.boolean(),
        fc.nat(2),
        (rows, cuts, crnl, key) => {
          const eol = crnl ? '\r\n' : '\n';
          const header = `a,"b\nc",d${eol}`;
          const lines = rows.map((r) => r.map(csvOut).join(',') + eol);
          const data = Buffer.from(header + lines.join(''), 'utf8');
          const got = split(opts, key, chunks(data, cuts));
          assert.deepEqual(
            got.header.map((h) => Buffer.from(h, 'latin1').toString('utf8')),
            [header],
          );
          assert.deepEqual(
            got.rows.map((r) => Buffer.from(r, 'latin1').toString('utf8')),
            lines,
          );
          assert.deepEqual(
            got.keys,
            rows.map((r) => r[key]!),
          );
        },
      ),
      { numRuns: 400 },
    );
  });

  test('binary: header, rows, NULLs and the trailer, any cut', () => {
    const opts = options('COPY t FROM STDIN (FORMAT binary)');
    fc.assert(
      fc.property(table, fc.array(fc.nat(), { maxLength: 6 }), fc.nat(2), (rows, cuts, key) => {
        const header = Buffer.concat([BINARY_SIGNATURE, Buffer.alloc(4), Buffer.from([0, 0, 0, 2, 7, 7])]);
        const enc = rows.map((r) => {
          const parts = [Buffer.from([0, r.length])];
          for (const v of r) {
            const len = Buffer.alloc(4);
            if (v === null) len.writeInt32BE(-1);
            else len.writeInt32BE(Buffer.byteLength(v));
            parts.push(len);
            if (v !== null) parts.push(Buffer.from(v));
          }
          return Buffer.concat(parts);
        });
        const data = Buffer.concat([header, ...enc, Buffer.from([0xff, 0xff]), Buffer.from('ignored')]);
        const got = split(opts, key, chunks(data, cuts));
        assert.deepEqual(got.header, [header.toString('latin1')]);
        assert.deepEqual(
          got.rows,
          enc.map((e) => e.toString('latin1')),
        );
        assert.deepEqual(
          got.keys,
          rows.map((r) => (r[key] === null ? null : Buffer.from(r[key]!).toString('hex'))),
        );
        assert.ok(got.ended);
      }),
      { numRuns: 300 },
    );
  });

  test('text: the end marker, a last line without a newline, escapes in the key', () => {
    const opts = options('COPY t FROM STDIN');
    const got = split(opts, 0, [Buffer.from('1\ta\n\\x41\\102\\n\tb\n7\tc\n\\.\n8\td\n')]);
    assert.deepEqual(got.keys, ['1', 'AB\n', '7']);
    assert.ok(got.ended);
    assert.deepEqual(split(opts, 1, [Buffer.from('1\ta\n2\t\\N')]).keys, ['a', null]);
    assert.deepEqual(split(opts, 0, [Buffer.from('5\tx\n'), Buffer.from('6\\.\n9\n')]).keys, ['5', '6']);
    // A backslash-escaped newline is data, not a row's end.
    assert.deepEqual(split(opts, 1, [Buffer.from('1\ta\\\nb\n')]).keys, ['a\nb']);
  });

  test('csv: NULL markers, FORCE_NOT_NULL and FORCE_NULL, another delimiter and escape', () => {
    const opts = options(`COPY t FROM STDIN (FORMAT csv, DELIMITER ';', ESCAPE '\\', NULL 'nil')`);
    const got = split(opts, 1, [Buffer.from('1;nil\n2;"nil"\n3;"a\\"b"\n4;"x;y"\n5;\n')]);
    assert.deepEqual(got.keys, [null, 'nil', 'a"b', 'x;y', '']);
    assert.deepEqual(split(opts, 1, [Buffer.from('1;nil\n')], { notNull: true, null: false }).keys, ['nil']);
    assert.deepEqual(split(opts, 1, [Buffer.from('1;"nil"\n')], { notNull: false, null: true }).keys, [null]);
    // `\.` is data in csv unless alone on its line.
    const plain = options('COPY t FROM STDIN (FORMAT csv)');
    assert.deepEqual(split(plain, 0, [Buffer.from('\\.x,1\n"\\."\n\\.\n9\n')]).keys, ['\\.x', '\\.']);
  });

  test('a row with fewer fields than the key needs has a NULL key (PostgreSQL refuses it)', () => {
    assert.deepEqual(split(options('COPY t FROM STDIN'), 2, [Buffer.from('1\t2\n')]).keys, [null]);
    assert.deepEqual(split(options('COPY t FROM STDIN (FORMAT csv)'), 2, [Buffer.from('1,2\n')]).keys, [
      null,
    ]);
  });

  test('the DEFAULT marker in the key is reported', () => {
    const opts = options(`COPY t FROM STDIN (DEFAULT '\\D')`);
    assert.deepEqual(split(opts, 0, [Buffer.from('\\D\tx\n')]).keys, ['default']);
  });

  test('binary: a bad signature and a truncated row are format errors', () => {
    const opts = options('COPY t FROM STDIN (FORMAT binary)');
    assert.throws(() => split(opts, 0, [Buffer.from('PGCOPY\nxxxxxxxxxxxxxxxxxxxxx')]), /signature/);
    const header = Buffer.concat([BINARY_SIGNATURE, Buffer.alloc(8)]);
    assert.throws(() => split(opts, 0, [header, Buffer.from([0, 1, 0, 0, 0, 4, 1])]), /unexpected EOF/);
  });

  test('deEscapeText follows CopyReadAttributesText', () => {
    assert.equal(deEscapeText(Buffer.from('a\\tb\\\\c\\x4Fz\\101\\q')).toString(), 'a\tb\\cOzAq');
  });

  test('options: defaults, CSV, refusals', () => {
    const t = options('COPY t FROM STDIN');
    assert.equal(t.format, 'text');
    assert.equal(t.delimiter, 9);
    assert.equal(t.nullMarker.toString(), '\\N');
    const c = options(`COPY t FROM STDIN WITH CSV HEADER QUOTE '''' FORCE NOT NULL a, b`);
    assert.equal(c.format, 'csv');
    assert.equal(c.quote, 0x27);
    assert.equal(c.escape, 0x27);
    assert.equal(c.header, true);
    assert.deepEqual(c.forceNotNull, ['a', 'b']);
    assert.ok('refused' in copyOptionsOf(copyStmt(`COPY t FROM STDIN (ENCODING 'LATIN1')`)));
  });
});
