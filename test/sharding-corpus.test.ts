/**
 * The differential corpus (issue #16): every statement of test/corpus/*.sql — TPC-H's 22 queries,
 * the SQL shapes a sharded cluster must answer, queries adapted from PostgreSQL's regression
 * tests — runs on a sharded cluster through the proxy (`pgscale up`, three groups) and on one
 * plain PostgreSQL holding the same rows. Each is `match`, `refused` (0A000: not supported yet,
 * allowed) or `wrong`; the test fails on any `wrong` not marked as a known bug (and on a
 * marked one that is no longer wrong). How rows are compared (order, ties, the
 * float tolerance): test/corpus/compare.ts and test/corpus/README.md. Each statement goes to the
 * proxy three times: as a simple Query, in the extended protocol with the unnamed statement, and
 * as a named prepared statement (a statement with Bind parameters: the last two only). The summary is printed;
 * PGSCALE_CORPUS_REPORT=<path> also writes it as JSON.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import pg from 'pg';
import { binarySets, makeCluster } from './harness.js';
import type { TestCluster } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { loadParser } from '../src/sql/pg-parser.js';
import { CORPUS_TIMEOUT, judge } from './corpus/compare.js';
import { loadCorpus, parseCorpusFile } from './corpus/load-corpus.js';
import type { Entry } from './corpus/load-corpus.js';
import { formatReport, loadData, PROTOCOLS, runEntry, summarize } from './corpus/runner.js';
import type { EntryResult, Protocol, Report } from './corpus/runner.js';

const bins = binarySets()[0]!;

describe('the corpus comparison itself', () => {
  before(() => loadParser());
  const ans = (rows: (string | null)[][], types = [23, 701]) => ({
    ok: true as const,
    fields: types.map((t, i) => ({ name: `c${i}`, typeOid: t })),
    rows,
  });

  test('rows in another order match without ORDER BY, and not with it', () => {
    const a = ans([
      ['1', '1.5'],
      ['2', '2.5'],
    ]);
    const b = ans([
      ['2', '2.5'],
      ['1', '1.5'],
    ]);
    assert.equal(judge('SELECT c0, c1 FROM t', a, b).kind, 'match');
    assert.equal(judge('SELECT c0, c1 FROM t ORDER BY c0', a, b).kind, 'wrong');
  });

  test('ties of the sort key may come in any order; a LIMIT may cut the last tie differently', () => {
    const a = ans([
      ['1', '1'],
      ['1', '2'],
      ['2', '3'],
      ['2', '4'],
    ]);
    const b = ans([
      ['1', '2'],
      ['1', '1'],
      ['2', '4'],
      ['2', '5'],
    ]);
    assert.equal(judge('SELECT c0, c1 FROM t ORDER BY c0', a, b).kind, 'wrong');
    assert.equal(judge('SELECT c0, c1 FROM t ORDER BY c0 LIMIT 4', a, b).kind, 'match');
    assert.equal(judge('SELECT c0, c1 FROM t ORDER BY 1 LIMIT 4', a, b).kind, 'match');
    assert.equal(judge('SELECT c0, c1 FROM t ORDER BY c0 LIMIT 4', a, ans(a.rows.slice(0, 3))).kind, 'wrong');
  });

  test('floats match within the relative tolerance, numeric and text exactly', () => {
    const f = (v: string) => ans([['1', v]]);
    assert.equal(judge('SELECT 1', f('0.30000000000000004'), f('0.3')).kind, 'match');
    assert.equal(judge('SELECT 1', f('0.3001'), f('0.3')).kind, 'wrong');
    const n = (v: string) => ans([['1', v]], [23, 1700]);
    assert.equal(judge('SELECT 1', n('0.30'), n('0.3')).kind, 'wrong');
  });

  test('corpus files: entries with an id, a shape, a known-wrong mark and parameters', () => {
    const text = [
      '-- the file comment',
      '-- id: a-1',
      '-- shape: first',
      'SELECT 1;',
      '',
      '-- id: a-2',
      '-- shape: second',
      '-- known-wrong: a bug',
      '-- params: [5, "x", [1, 2], null]',
      'SELECT *',
      '  FROM t WHERE k = $1',
    ].join('\n');
    assert.deepEqual(parseCorpusFile(text, 'g'), [
      { id: 'a-1', group: 'g', shape: 'first', sql: 'SELECT 1' },
      {
        id: 'a-2',
        group: 'g',
        shape: 'second',
        sql: 'SELECT *\n  FROM t WHERE k = $1',
        knownWrong: 'a bug',
        params: [5, 'x', [1, 2], null],
      },
    ]);
  });

  test('0A000 is refused; another error, or rows where PostgreSQL fails, is wrong', () => {
    const a = ans([['1', '1']]);
    const err = (code: string) => ({ ok: false as const, code, message: 'x' });
    assert.equal(judge('SELECT 1', a, err('0A000')).kind, 'refused');
    assert.equal(judge('SELECT 1', a, err('XX000')).kind, 'wrong');
    assert.equal(judge('SELECT 1/0', err('22012'), err('22012')).kind, 'match');
    assert.equal(judge('SELECT 1/0', err('22012'), a).kind, 'wrong');
  });
});

describe('the differential corpus: a sharded cluster through the proxy vs one plain PostgreSQL', () => {
  let sc: ShardedCluster | undefined;
  let plainCluster: TestCluster | undefined;
  let proxy: pg.Client;
  let plain: pg.Client;
  let corpus: Entry[] = [];

  before(async () => {
    await loadParser();
    corpus = loadCorpus();
    // Both start at once; whichever started is kept for after() even when the other failed.
    const [s, p] = await Promise.allSettled([
      upSharded(bins, { groups: 3, replicas: 0 }),
      (async () => {
        plainCluster = await makeCluster(bins, { replicas: 0 });
        await plainCluster.cluster.up();
        return plainCluster;
      })(),
    ]);
    if (s.status === 'fulfilled') sc = s.value;
    if (s.status === 'rejected') throw s.reason;
    if (p.status === 'rejected') throw p.reason;
    plainCluster = p.value;
    proxy = await s.value.connectApp();
    await proxy.query(`SET statement_timeout = '${CORPUS_TIMEOUT}'`);
    plain = new pg.Client(plainCluster.cluster.target(plainCluster.cluster.nodes()[0]!, 'app'));
    plain.on('error', () => undefined);
    await plain.connect();
    const [onProxy, onPlain] = await Promise.all([loadData(proxy, true), loadData(plain, false)]);
    assert.deepEqual(onProxy, onPlain, 'the same rows loaded on both sides');
    await plain.query('ANALYZE');
  });
  after(async () => {
    await proxy?.end().catch(() => undefined);
    await plain?.end().catch(() => undefined);
    await Promise.all([sc?.down(), plainCluster?.cleanup()]);
  });

  test('TPC-H: every one of the 22 queries returns rows on the plain server', async () => {
    const tpch = corpus.filter((e) => e.group === 'tpch');
    assert.equal(tpch.length, 22);
    for (const e of tpch) {
      const r = await plain.query(e.sql);
      assert.ok(r.rows.length > 0, `${e.id} returns no rows`);
    }
  });

  test('every statement is answered as PostgreSQL answers it, or refused with 0A000', async () => {
    const results: EntryResult[] = [];
    for (const e of corpus) {
      const rs = await runEntry(e, plain, proxy);
      results.push(...rs);
      // A statement that broke the proxy connection: a new one, so the rest are still judged.
      if (rs.some((r) => r.verdict === 'wrong')) {
        const alive = await proxy.query('SELECT 1').then(
          () => true,
          () => false,
        );
        if (!alive) {
          await proxy.end().catch(() => undefined);
          proxy = await sc!.connectApp();
          await proxy.query(`SET statement_timeout = '${CORPUS_TIMEOUT}'`);
        }
      }
    }
    const reports = Object.fromEntries(
      PROTOCOLS.map((p) => [p, summarize(results.filter((r) => r.protocol === p))]),
    ) as Record<Protocol, Report>;
    for (const p of PROTOCOLS) console.log(`${p} protocol\n${formatReport(reports[p])}`);
    const path = process.env.PGSCALE_CORPUS_REPORT;
    if (path) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, JSON.stringify({ postgres: bins.version, ...reports }, null, 2) + '\n');
    }
    assert.ok(corpus.length >= 150, `the corpus holds ${corpus.length} statements`);
    assert.deepEqual(
      PROTOCOLS.flatMap((p) => reports[p].wrong).map((w) => `${w.id} (${w.protocol}): ${w.detail ?? ''}`),
      [],
      'statements answered differently from PostgreSQL',
    );
    // Marked known-wrong but answered rightly (or refused) in every protocol.
    const stillWrong = new Set(results.filter((r) => r.verdict === 'wrong').map((r) => r.id));
    assert.deepEqual(
      corpus.filter((e) => e.knownWrong && !stillWrong.has(e.id)).map((e) => e.id),
      [],
      'statements marked known-wrong that are answered rightly now: remove their marks',
    );
  });
});
