/**
 * The rows of a `COPY … FROM STDIN` data stream, cut where PostgreSQL cuts them, each with the
 * value of its distribution column, so the proxy can send every row to the group that holds its
 * shard (copy-in.ts). The rows are passed on byte for byte: each group's PostgreSQL parses and
 * checks them itself, so a row the splitter reads differently from PostgreSQL can only land on a
 * group that refuses it (its partitions reject a foreign key), never silently elsewhere.
 *
 * The rules follow PostgreSQL's copyfromparse.c:
 * - text: a row ends at a newline (`\n`, `\r` or `\r\n`, as the first row set it); a backslash
 *   takes the next byte with it; `\.` ends the data; fields are split at the delimiter, a field
 *   equal to the NULL marker as written is NULL, others are de-escaped (`\t`, `\n`, `\123`,
 *   `\x4f`, …);
 * - csv: newlines inside quotes are data; the escape byte inside quotes takes a quote or escape
 *   with it; a field is NULL when it is unquoted and equal to the NULL marker (FORCE_NOT_NULL
 *   and FORCE_NULL change that); `\.` alone on a line ends the data;
 * - binary: the signature and header, then per row a field count and each field's length and
 *   bytes; a count of -1 ends the data.
 * A header line (HEADER) is handed over apart: every group's COPY is given it.
 * Pure, no I/O.
 */
import type { ColumnValue } from './types.js';
import type { CopyOptions } from './copy-options.js';

/** A row's distribution-column value: SQL NULL is null; 'default' is COPY's DEFAULT marker. */
export type CopyKey = ColumnValue | null | 'default';

export interface CopySink {
  /** The header every group's data starts with (binary header, or the CSV/text HEADER line). */
  header(bytes: Buffer): void;
  /** One row as the client sent it, its line end included. */
  row(bytes: Buffer, key: CopyKey): void;
}

/** Data PostgreSQL would refuse (22P04, bad_copy_file_format). */
export class CopyFormatError extends Error {
  readonly sqlstate = '22P04';
}

export const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
export const BINARY_TRAILER = Buffer.from([0xff, 0xff]);

const BACKSLASH = 0x5c;
const NL = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;

type Eol = 'unknown' | 'nl' | 'cr' | 'crnl';

/**
 * Cuts a COPY data stream into rows. `keyIndex`: the distribution column's place among the
 * COPY's columns (null: rows are not keyed, a reference table's copy goes everywhere);
 * `keyForced`: FORCE_NOT_NULL / FORCE_NULL name that column (csv).
 */
export class CopyRowSplitter {
  /** The data ended (`\.` or the binary trailer): what follows is ignored, as PostgreSQL does. */
  ended = false;
  rows = 0;
  private buf: Buffer = Buffer.alloc(0);
  /** Where the current row starts in `buf`, and how far it has been scanned. */
  private rowStart = 0;
  private scan = 0;
  private eol: Eol = 'unknown';
  private headerDone: boolean;
  // csv line state
  private inQuote = false;
  private lastWasEsc = false;
  // binary state
  private binaryHeader = false;

  constructor(
    private readonly opts: CopyOptions,
    private readonly keyIndex: number | null,
    private readonly keyForced: { readonly notNull: boolean; readonly null: boolean } = {
      notNull: false,
      null: false,
    },
  ) {
    this.headerDone = !opts.header || opts.format === 'binary';
  }

  /** Takes the next CopyData payload; rows that are complete go to `sink`. */
  push(chunk: Buffer, sink: CopySink): void {
    if (this.ended || chunk.length === 0) return;
    if (this.rowStart >= this.buf.length) {
      this.buf = chunk;
      this.scan -= this.rowStart;
      this.rowStart = 0;
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.rowStart), chunk]);
      this.scan -= this.rowStart;
      this.rowStart = 0;
    }
    if (this.opts.format === 'binary') this.binaryRows(sink, false);
    else this.lines(sink, false);
  }

  /** The data is complete (CopyDone): a last line without a newline is a row. */
  end(sink: CopySink): void {
    if (this.ended) return;
    if (this.opts.format === 'binary') {
      this.binaryRows(sink, true);
      if (!this.ended && this.rowStart < this.buf.length)
        throw new CopyFormatError('unexpected EOF in COPY data');
      if (!this.binaryHeader && this.rows === 0 && this.buf.length > 0)
        throw new CopyFormatError('COPY file signature not recognized');
    } else {
      this.lines(sink, true);
      if (!this.ended && this.rowStart < this.buf.length) {
        this.emitLine(this.buf.subarray(this.rowStart), this.buf.length - this.rowStart, sink);
        this.rowStart = this.buf.length;
      }
    }
    this.ended = true;
  }

  // ------------------------------------------------------------------ text and csv

  private lines(sink: CopySink, atEnd: boolean): void {
    const b = this.buf;
    const csv = this.opts.format === 'csv';
    const quote = this.opts.quote;
    // As PostgreSQL: an escape equal to the quote is no escape for finding line ends.
    const escape = csv && this.opts.escape !== quote ? this.opts.escape : -1;
    let i = this.scan;
    while (i < b.length) {
      const c = b[i]!;
      if (csv) {
        if (this.inQuote && c === escape) this.lastWasEsc = !this.lastWasEsc;
        if (c === quote && !this.lastWasEsc) this.inQuote = !this.inQuote;
        if (c !== escape) this.lastWasEsc = false;
        if (this.inQuote) {
          i++;
          continue;
        }
      }
      if (c === NL || c === CR) {
        // A row's end, as the first row set the style; a newline of another style is data here
        // (PostgreSQL refuses it: the row reaches a group whole, which says so).
        let end = -1;
        if (c === NL) {
          if (this.eol === 'unknown') this.eol = 'nl';
          if (this.eol === 'nl') end = i + 1;
        } else if (this.eol === 'cr') {
          end = i + 1;
        } else if (this.eol !== 'nl') {
          if (i + 1 >= b.length && !atEnd) break; // is a \n next? wait for it
          if (b[i + 1] === NL) {
            this.eol = 'crnl';
            end = i + 2;
          } else if (this.eol === 'unknown') {
            this.eol = 'cr';
            end = i + 1;
          }
        }
        if (end < 0) {
          i++;
          continue;
        }
        this.emitLine(b.subarray(this.rowStart, end), i - this.rowStart, sink);
        this.rowStart = end;
        i = end;
        continue;
      }
      if (c === BACKSLASH && (!csv || i === this.rowStart)) {
        if (i + 1 >= b.length) {
          if (!atEnd) break; // is it `\.`? wait for the next byte
          i++;
          continue;
        }
        if (b[i + 1] === DOT) {
          const marker = this.endMarker(i, atEnd);
          if (marker === 'wait') break;
          if (marker === 'data') {
            i += csv ? 1 : 2; // text: an escape (PostgreSQL refuses it as a corrupt marker)
            continue;
          }
          if (marker === 'end') {
            // The data before `\.` on its line is the last row (text format).
            if (i > this.rowStart) this.emitLine(b.subarray(this.rowStart, i), i - this.rowStart, sink);
            this.rowStart = b.length;
            this.ended = true;
            return;
          }
        } else if (!csv) {
          i += 2; // the escaped byte is data (a newline too)
          continue;
        }
      }
      i++;
    }
    this.scan = i;
  }

  /** At a `\.` at `i`: the end of the data, data (csv only), or not known before more bytes. */
  private endMarker(i: number, atEnd: boolean): 'end' | 'data' | 'wait' {
    const b = this.buf;
    const next = i + 2;
    if (next >= b.length) return atEnd ? 'end' : 'wait';
    const c = b[next]!;
    if (c === NL) return 'end';
    if (c === CR) {
      if (next + 1 >= b.length && !atEnd) return 'wait';
      return 'end';
    }
    // csv: data; text: PostgreSQL refuses it ("end-of-copy marker corrupt"), the group says so.
    return 'data';
  }

  /** A complete line: the header, or a row whose key is read from its first `content` bytes. */
  private emitLine(line: Buffer, content: number, sink: CopySink): void {
    if (!this.headerDone) {
      this.headerDone = true;
      sink.header(Buffer.from(line));
      return;
    }
    this.rows++;
    const key = this.keyIndex === null ? null : this.keyOf(line, content);
    sink.row(line, key);
  }

  private keyOf(line: Buffer, content: number): CopyKey {
    return this.opts.format === 'csv' ? this.csvKey(line, content) : this.textKey(line, content);
  }

  private textKey(line: Buffer, content: number): CopyKey {
    const delim = this.opts.delimiter;
    let field = 0;
    let start = 0;
    let i = 0;
    const want = this.keyIndex!;
    while (i < content) {
      const c = line[i]!;
      if (c === BACKSLASH) {
        i += 2;
        continue;
      }
      if (c === delim) {
        if (field === want) break;
        field++;
        start = i + 1;
      }
      i++;
    }
    if (field !== want) return null; // fewer fields: PostgreSQL refuses the row itself
    const end = Math.min(i, content);
    const raw = line.subarray(start, end);
    if (raw.equals(this.opts.nullMarker)) return null;
    if (this.opts.defaultMarker !== null && raw.equals(this.opts.defaultMarker)) return 'default';
    return { format: 'text', text: deEscapeText(raw).toString('utf8') };
  }

  private csvKey(line: Buffer, content: number): CopyKey {
    const { delimiter: delim, quote, escape } = this.opts;
    const want = this.keyIndex!;
    let i = 0;
    for (let field = 0; ; field++) {
      const start = i;
      let sawQuote = false;
      let foundDelim = false;
      const out: number[] = [];
      // A field: unquoted bytes and quoted parts, to the next unquoted delimiter.
      scan: while (i < content) {
        const c = line[i++]!;
        if (c === delim) {
          foundDelim = true;
          break;
        }
        if (c !== quote) {
          out.push(c);
          continue;
        }
        sawQuote = true;
        for (;;) {
          if (i >= content) break scan; // unterminated: PostgreSQL refuses the row itself
          const q = line[i++]!;
          if (q === escape && i < content && (line[i] === escape || line[i] === quote)) {
            out.push(line[i++]!);
            continue;
          }
          if (q === quote) break;
          out.push(q);
        }
      }
      if (field === want) {
        const raw = line.subarray(start, foundDelim ? i - 1 : i);
        const marker = this.opts.nullMarker;
        // As NextCopyFrom: an unquoted NULL marker is NULL unless FORCE_NOT_NULL (then the
        // marker's text); any other value equal to the marker is NULL under FORCE_NULL.
        if (!sawQuote && raw.equals(marker)) {
          if (!this.keyForced.notNull) return null;
        } else if (this.keyForced.null && Buffer.from(out).equals(marker)) return null;
        if (!sawQuote && this.opts.defaultMarker !== null && raw.equals(this.opts.defaultMarker))
          return 'default';
        return { format: 'text', text: Buffer.from(out).toString('utf8') };
      }
      if (!foundDelim) return null; // fewer fields: PostgreSQL refuses the row itself
    }
  }

  // ------------------------------------------------------------------ binary

  private binaryRows(sink: CopySink, atEnd: boolean): void {
    const b = this.buf;
    if (!this.binaryHeader) {
      if (b.length < 19) {
        if (atEnd && b.length > 0) throw new CopyFormatError('COPY file signature not recognized');
        return;
      }
      if (!b.subarray(0, 11).equals(BINARY_SIGNATURE))
        throw new CopyFormatError('COPY file signature not recognized');
      const ext = b.readInt32BE(15);
      if (ext < 0) throw new CopyFormatError('invalid COPY file header (wrong length)');
      if (b.length < 19 + ext) return;
      this.binaryHeader = true;
      sink.header(Buffer.from(b.subarray(0, 19 + ext)));
      this.rowStart = this.scan = 19 + ext;
    }
    for (;;) {
      const at = this.rowStart;
      if (at + 2 > b.length) return;
      const count = b.readInt16BE(at);
      if (count === -1) {
        this.ended = true;
        this.rowStart = b.length;
        return;
      }
      if (count < 0)
        throw new CopyFormatError(`row field count is ${count}, expected a count of the columns`);
      let p = at + 2;
      let key: CopyKey = null;
      for (let f = 0; f < count; f++) {
        if (p + 4 > b.length) return;
        const len = b.readInt32BE(p);
        p += 4;
        if (len < -1) throw new CopyFormatError('invalid field size');
        if (len > 0 && p + len > b.length) return;
        if (f === this.keyIndex)
          key = len === -1 ? null : { format: 'binary', bytes: b.subarray(p, p + len) };
        if (len > 0) p += len;
      }
      this.rows++;
      sink.row(b.subarray(at, p), key);
      this.rowStart = this.scan = p;
    }
  }
}

/** A text-format field with its backslash escapes resolved (PostgreSQL's CopyReadAttributesText). */
export function deEscapeText(raw: Buffer): Buffer {
  if (!raw.includes(BACKSLASH)) return raw;
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    let c = raw[i]!;
    if (c !== BACKSLASH) {
      out.push(c);
      continue;
    }
    if (i + 1 >= raw.length) break; // a lone trailing backslash is dropped, as PostgreSQL does
    c = raw[++i]!;
    if (c >= 0x30 && c <= 0x37) {
      let v = c - 0x30;
      for (let n = 0; n < 2 && i + 1 < raw.length && raw[i + 1]! >= 0x30 && raw[i + 1]! <= 0x37; n++)
        v = (v << 3) + (raw[++i]! - 0x30);
      out.push(v & 0xff);
    } else if (c === 0x78 && i + 1 < raw.length && isHex(raw[i + 1]!)) {
      let v = hexValue(raw[++i]!);
      if (i + 1 < raw.length && isHex(raw[i + 1]!)) v = (v << 4) + hexValue(raw[++i]!);
      out.push(v & 0xff);
    } else {
      out.push(ESCAPES.get(c) ?? c);
    }
  }
  return Buffer.from(out);
}

const ESCAPES = new Map<number, number>([
  [0x62, 0x08], // \b
  [0x66, 0x0c], // \f
  [0x6e, 0x0a], // \n
  [0x72, 0x0d], // \r
  [0x74, 0x09], // \t
  [0x76, 0x0b], // \v
]);

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function hexValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10;
}
