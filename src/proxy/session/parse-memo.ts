/**
 * A client's last Parse, remembered by its bytes: drivers send the same Parse over and over (the
 * unnamed statement of every `-M extended` transaction, an ORM's few texts), and its decoding
 * (UTF-8 check and string of the text, the parameter types) and its one analysis lookup are then
 * done once, not per message. The next Parse is compared with the remembered bytes in place
 * (no view, no copy); only a different one is decoded and remembered instead.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { decodeParse } from '../../protocol/frontend-messages.js';
import type { Parse } from '../../protocol/frontend-messages.js';
import type { Result } from '../../protocol/result.js';
import type { Analyzer, StatementFacts } from '../../sql/analyze.js';

export interface ParseFacts {
  readonly statement: string;
  readonly query: string;
  readonly paramTypes: readonly number[];
  /** The text's one analysis (effects, risk, DDL, sequence calls… memoized on it). */
  readonly facts: StatementFacts;
}

/** Parse payloads longer than this are decoded each time: a client keeps no large copy. */
const MAX_REMEMBERED = 4096;

export class ParseMemo {
  private bytes: Buffer | null = null;
  private result: { ok: true; value: ParseFacts } | null = null;
  private analyzer: Analyzer | null = null;

  /** The decoded Parse `f` and its analysis; a failure for a malformed one. */
  of(f: TypedFrame, analyzer: Analyzer): Result<ParseFacts> {
    const last = this.bytes;
    const start = f.start + 5;
    if (
      last !== null &&
      this.analyzer === analyzer &&
      last.length === f.end - start &&
      last.compare(f.chunk, start, f.end) === 0
    ) {
      return this.result!;
    }
    const payload = f.payload;
    const p: Result<Parse> = decodeParse(payload);
    if (!p.ok) return p;
    const { statement, query, paramTypes } = p.value;
    const result = {
      ok: true as const,
      value: { statement, query, paramTypes, facts: analyzer.analyze(query) },
    };
    if (payload.length <= MAX_REMEMBERED) {
      this.bytes = Buffer.from(payload);
      this.result = result;
      this.analyzer = analyzer;
    } else {
      this.bytes = null;
      this.result = null;
    }
    return result;
  }
}
