/**
 * Cost per statement of looking for relations with hidden code (src/proxy/backend/hidden-code.ts)
 * when the database has some (with none, the proxy does not even lex): the lexer pass that lists
 * a text's identifiers on a cache miss (simple-protocol texts with literals differ every time),
 * the regular expression of the names that spares the lexer texts naming none of them, the same
 * from the per-text cache, and the Set lookups (the text-making cost, replaceOnlyUs, is
 * subtracted in the ratios); next to the classifier's fast path, which
 * read/write splitting already pays per statement, as a ratio. Then what the registry's
 * riskOfText costs per statement (new literal each time) for a database with nothing hiding code
 * (`emptyRegistryUs`: no lexing at all), with listed names, a user operator `===` and functions
 * reachable by attribute notation that the texts do not use (`listedRegistryUs`: one regex test),
 * and with a user overload of `=` (`eqOverloadUs`: texts using `=` are lexed). Run directly:
 * `node --import tsx bench/hidden-code.ts`. No asserts on time.
 */
import { relationRefs } from '../src/sql/relation-refs.js';
import { cachedRefs, HiddenCodeRegistry, prefilter } from '../src/proxy/backend/hidden-code.js';
import { Classifier } from '../src/sql/classify.js';

/** The server connection the registry opens (a stand-in here): its own type, not backend's. */
type RegistryConn = Awaited<ReturnType<ConstructorParameters<typeof HiddenCodeRegistry>[0]>>;

const CORPUS: readonly string[] = [
  'SELECT abalance FROM pgbench_accounts WHERE aid = 42;',
  'UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 42;',
  'UPDATE pgbench_tellers SET tbalance = tbalance + -1234 WHERE tid = 7;',
  'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 42, -1234, CURRENT_TIMESTAMP);',
  'SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = $1',
  'SELECT * FROM orders WHERE customer_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT 50',
];

const registry = new Map<string, string>([
  ['v_report', 'view'],
  ['audit_log', 'trigger'],
  ['tenants', 'row-level security'],
]);

function perStatementUs(n: number, f: (sql: string, i: number) => unknown): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f(CORPUS[i % CORPUS.length]!, i);
  return Number(process.hrtime.bigint() - t0) / 1000 / n;
}

function lookup(names: readonly string[]): string | null {
  for (const x of names) {
    const why = registry.get(x);
    if (why !== undefined) return why;
  }
  return null;
}

const N = 200_000;
// Misses: a literal changes every time, as in simple-protocol pgbench.
const miss = (sql: string, i: number) => lookup(relationRefs(sql.replace('42', String(i))).names);
const hit = (sql: string) => lookup(cachedRefs(sql).names);
// What the proxy does: texts the names' regular expression does not match are not lexed.
const pattern = prefilter(registry.keys())!;
const filtered = (sql: string, i: number) => {
  const text = sql.replace('42', String(i));
  return pattern.test(text) ? lookup(relationRefs(text).names) : null;
};
const replaceOnly = (sql: string, i: number) => sql.replace('42', String(i));
/** A registry loaded with these catalog rows `(kind, name, why)`. */
async function loadedRegistry(rows: (string | null)[][]): Promise<HiddenCodeRegistry> {
  const conn = { closed: false, query: () => Promise.resolve({ rows, error: null }), close: () => undefined };
  const r = new HiddenCodeRegistry(() => Promise.resolve(conn as unknown as RegistryConn));
  await r.refresh();
  return r;
}
const emptyRegistry = await loadedRegistry([]);
const listed: (string | null)[][] = [
  ...[...registry].map(([n, why]) => ['n', n, `relation ${n} (${why})`]),
  ['o', '===', null],
  ['a', 'full_name', null],
  ['a', 'attr_path', null],
];
const listedRegistry = await loadedRegistry(listed);
const eqRegistry = await loadedRegistry([...listed, ['o', '=', null]]);
const risk = (r: HiddenCodeRegistry) => (sql: string, i: number) =>
  r.riskOfText(sql.replace('42', String(i)));
const classifier = await Classifier.create({ readOnlyFunctions: [], writeFunctions: [] });
const classify = (sql: string, i: number) => classifier.classify(sql.replace('42', String(i)));
for (let round = 0; round < 2; round++) {
  const r = {
    replaceOnlyUs: perStatementUs(N, replaceOnly),
    missUs: perStatementUs(N, miss),
    filteredMissUs: perStatementUs(N, filtered),
    hitUs: perStatementUs(N, hit),
    classifyMissUs: perStatementUs(N, classify),
    emptyRegistryUs: perStatementUs(N, risk(emptyRegistry)),
    listedRegistryUs: perStatementUs(N, risk(listedRegistry)),
    eqOverloadUs: perStatementUs(N / 4, risk(eqRegistry)),
  };
  if (round === 1)
    console.log(
      JSON.stringify({
        ...Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v.toFixed(3))])),
        missVsClassify: Number(
          ((r.missUs - r.replaceOnlyUs) / (r.classifyMissUs - r.replaceOnlyUs)).toFixed(2),
        ),
        filteredVsClassify: Number(
          ((r.filteredMissUs - r.replaceOnlyUs) / (r.classifyMissUs - r.replaceOnlyUs)).toFixed(3),
        ),
      }),
    );
}
