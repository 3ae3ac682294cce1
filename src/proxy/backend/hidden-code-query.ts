/**
 * The catalog query of the hidden-code registry (src/proxy/backend/hidden-code.ts): everything of
 * a database behind which user code runs without the statement's text calling it. One row per
 * finding, `(kind, name, why)`:
 *
 * - `n`, a relation or type name: views and materialized views, tables with user triggers,
 *   rules, row-level security, column defaults / generated columns / check constraints / index
 *   expressions calling a user function, indexes whose operator class calls one, foreign tables
 *   (their wrapper's code), columns of a type with hidden code; and, reached from those, the
 *   tables their foreign keys reference and their parents. Types with hidden code: user
 *   input/output (and receive/send, typmod, analyze) functions, a user cast (its non-built-in
 *   side), a domain whose check or default calls a user function, a default btree or hash
 *   operator class calling one (sorting, grouping, hashing run it without syntax; a default GiST
 *   or GIN class, as btree_gist makes for int4, serves only indexes, listed by the index arm);
 *   and the arrays, domains, ranges and composite types (table row types included) built on one.
 * - `o`, an operator symbol: every operator a user made (OID >= 16384) or whose function, or
 *   selectivity estimator, is a user function.
 * - `a`, a function name reachable by attribute notation (`t.f` calls `f(t)`): user functions
 *   callable with one argument.
 * - `c`: a user cast function between two built-in types (a superuser's act): it may run on any
 *   statement, with or without `::`.
 * - `s`, a `search_path` default from `ALTER ROLE`/`ALTER DATABASE … SET` for this database.
 * - `e`: an enabled event trigger.
 * - `q`, a relation whose writes may call nextval() unseen (a column default calling it, serial;
 *   an identity column) or reach one (a cascading SET DEFAULT, an insert through a parent): after
 *   such a write the session may hold sequence state (currval, lastval).
 *
 * Every relation, function and operator is schema-qualified, and the connection running it has
 * search_path pinned to pg_catalog, so no client's session state can change its answer.
 */

import { SAFE_BUILTIN_FUNCTIONS } from '../../sql/session-safety.js';

/** User-defined objects have OIDs from FirstNormalObjectId on; initdb's own are below. */
export const FIRST_NORMAL_OBJECT_ID = 16384;

const REGCLASS = (name: string) => `'pg_catalog.${name}'::pg_catalog.regclass`;
const EQ = 'OPERATOR(pg_catalog.=)';
const GE = 'OPERATOR(pg_catalog.>=)';
const LT = 'OPERATOR(pg_catalog.<)';
const LE = 'OPERATOR(pg_catalog.<=)';
const GT = 'OPERATOR(pg_catalog.>)';
const COLUMN = `a.attnum ${GT} 0 AND NOT a.attisdropped`;
const NE = 'OPERATOR(pg_catalog.<>)';
const USER_OID = `${GE} ${FIRST_NORMAL_OBJECT_ID}::pg_catalog.oid`;
/** A pg_depend row `d` on a user function or operator (built-ins, pinned, have no rows). */
const USER_FUNCTION =
  `(d.refclassid ${EQ} ${REGCLASS('pg_proc')} OR d.refclassid ${EQ} ${REGCLASS('pg_operator')}) ` +
  `AND d.refobjid ${USER_OID}`;
const userProc = (col: string) => `${col}::pg_catalog.oid ${USER_OID}`;

/** The allow list of built-in calls, once. */
const SAFE_CALLS =
  'safe_calls(name) AS (SELECT pg_catalog.unnest(ARRAY[' +
  [...SAFE_BUILTIN_FUNCTIONS].map((n) => `'${n}'`).join(', ') +
  ']::pg_catalog.text[]))';

/**
 * Stored expressions (column defaults, constraints of tables and domains, index expressions and
 * predicates, domain defaults) that call something not provably free of session effects: a
 * function that is a user's or a built-in outside the session-safety allow list (set_config,
 * session advisory locks, query_to_xml running a query…). pg_depend records no dependency on
 * built-ins, so the trees themselves are read (`:funcid N`; only trees holding one go through the
 * regular expression), all in one set-based pass. User operators there are found by pg_depend.
 */
const UNSAFE_EXPRS =
  'exprs(rel, typ, tree) AS (' +
  'SELECT a.adrelid, 0::pg_catalog.oid, a.adbin::pg_catalog.text FROM pg_catalog.pg_attrdef a ' +
  'UNION ALL SELECT k.conrelid, k.contypid, k.conbin::pg_catalog.text FROM pg_catalog.pg_constraint k ' +
  'WHERE k.conbin IS NOT NULL ' +
  'UNION ALL SELECT i.indrelid, 0::pg_catalog.oid, ' +
  'pg_catalog.concat(i.indexprs::pg_catalog.text, i.indpred::pg_catalog.text) FROM pg_catalog.pg_index i ' +
  'WHERE i.indexprs IS NOT NULL OR i.indpred IS NOT NULL ' +
  'UNION ALL SELECT 0::pg_catalog.oid, t.oid, t.typdefaultbin::pg_catalog.text FROM pg_catalog.pg_type t ' +
  'WHERE t.typdefaultbin IS NOT NULL), ' +
  'unsafe_exprs(rel, typ) AS (SELECT DISTINCT e.rel, e.typ ' +
  `FROM (SELECT * FROM exprs WHERE pg_catalog.strpos(exprs.tree, ':funcid ') ${GT} 0) e ` +
  `CROSS JOIN LATERAL pg_catalog.regexp_matches(e.tree, ':funcid (\\d+)', 'g') m ` +
  `JOIN pg_catalog.pg_proc p ON p.oid ${EQ} m[1]::pg_catalog.oid ` +
  `LEFT JOIN safe_calls sc ON sc.name ${EQ} p.proname::pg_catalog.text ` +
  `WHERE p.oid ${USER_OID} OR sc.name IS NULL)`;

/** Types whose values run user code when converted, compared, checked or defaulted. */
const TYPES =
  'htypes(oid, why) AS (' +
  `SELECT t.oid, 'a type with user input/output functions' FROM pg_catalog.pg_type t WHERE ` +
  ['t.typinput', 't.typoutput', 't.typreceive', 't.typsend', 't.typmodin', 't.typmodout', 't.typanalyze']
    .map(userProc)
    .join(' OR ') +
  ` UNION SELECT s.side, 'a type with a user cast' FROM pg_catalog.pg_cast c, ` +
  `LATERAL (VALUES (c.castsource), (c.casttarget)) s(side) ` +
  `WHERE (c.oid ${USER_OID} OR ${userProc('c.castfunc')}) AND c.castfunc ${NE} 0::pg_catalog.oid AND s.side ${USER_OID} ` +
  `UNION SELECT k.contypid, 'a domain whose check calls a function' ` +
  `FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_depend d ON d.classid ${EQ} ${REGCLASS('pg_constraint')} ` +
  `AND d.objid ${EQ} k.oid WHERE k.contypid ${NE} 0::pg_catalog.oid AND ${USER_FUNCTION} ` +
  `UNION SELECT u.typ, 'a domain whose check or default calls a function' FROM unsafe_exprs u ` +
  `WHERE u.typ ${NE} 0::pg_catalog.oid ` +
  `UNION SELECT d.objid, 'a type depending on a function' FROM pg_catalog.pg_depend d ` +
  `WHERE d.classid ${EQ} ${REGCLASS('pg_type')} AND ${USER_FUNCTION} ` +
  `UNION SELECT oc.opcintype, 'a default operator class calling a function' FROM pg_catalog.pg_opclass oc ` +
  `JOIN pg_catalog.pg_am am ON am.oid ${EQ} oc.opcmethod AND am.amname IN ('btree', 'hash') ` +
  `JOIN pg_catalog.pg_amproc p ON p.amprocfamily ${EQ} oc.opcfamily WHERE oc.opcdefault AND ${userProc('p.amproc')} ` +
  `UNION SELECT e.whole, 'built on a type with hidden code' FROM htypes h JOIN (` +
  `SELECT t.oid AS whole, t.typelem AS part FROM pg_catalog.pg_type t WHERE t.typelem ${NE} 0::pg_catalog.oid ` +
  `UNION ALL SELECT t.oid, t.typbasetype FROM pg_catalog.pg_type t WHERE t.typbasetype ${NE} 0::pg_catalog.oid ` +
  `UNION ALL SELECT r.rngtypid, r.rngsubtype FROM pg_catalog.pg_range r ` +
  `UNION ALL SELECT r.rngmultitypid, r.rngtypid FROM pg_catalog.pg_range r ` +
  `UNION ALL SELECT c.reltype, a.atttypid FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ` +
  `ON c.oid ${EQ} a.attrelid WHERE ${COLUMN}` +
  `) e ON e.part ${EQ} h.oid)`;

/** Relations behind which user code runs (see the module comment). */
const RELATIONS =
  'hidden(oid, why) AS (' +
  `SELECT c.oid, CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END FROM pg_catalog.pg_class c ` +
  `WHERE c.relkind IN ('v', 'm') AND c.oid ${USER_OID} ` +
  `UNION SELECT t.tgrelid, 'trigger' FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal ` +
  `UNION SELECT r.ev_class, 'rule' FROM pg_catalog.pg_rewrite r WHERE r.rulename ${NE} '_RETURN' ` +
  `AND r.ev_class ${USER_OID} ` +
  `UNION SELECT c.oid, 'row-level security' FROM pg_catalog.pg_class c WHERE c.relrowsecurity ` +
  `UNION SELECT f.ftrelid, 'foreign table' FROM pg_catalog.pg_foreign_table f ` +
  `UNION SELECT a.adrelid, 'a column default or generated column calling a function' ` +
  `FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_depend d ON d.classid ${EQ} ${REGCLASS('pg_attrdef')} ` +
  `AND d.objid ${EQ} a.oid WHERE ${USER_FUNCTION} ` +
  `UNION SELECT k.conrelid, 'a constraint calling a function' ` +
  `FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_depend d ON d.classid ${EQ} ${REGCLASS('pg_constraint')} ` +
  `AND d.objid ${EQ} k.oid WHERE k.conrelid ${NE} 0::pg_catalog.oid AND ${USER_FUNCTION} ` +
  `UNION SELECT i.indrelid, 'an index expression calling a function' ` +
  `FROM pg_catalog.pg_index i JOIN pg_catalog.pg_depend d ON d.classid ${EQ} ${REGCLASS('pg_class')} ` +
  `AND d.objid ${EQ} i.indexrelid WHERE ${USER_FUNCTION} ` +
  `UNION SELECT u.rel, 'an expression calling a function with possible session effects' ` +
  `FROM unsafe_exprs u WHERE u.rel ${NE} 0::pg_catalog.oid ` +
  `UNION SELECT i.indrelid, 'an index whose operator class calls a function' FROM pg_catalog.pg_index i ` +
  `JOIN pg_catalog.pg_opclass oc ON oc.oid ${EQ} ANY (i.indclass) ` +
  `JOIN pg_catalog.pg_amproc p ON p.amprocfamily ${EQ} oc.opcfamily WHERE ${userProc('p.amproc')} ` +
  `UNION SELECT a.attrelid, 'a column of a type with hidden code' FROM pg_catalog.pg_attribute a ` +
  `JOIN htypes h ON h.oid ${EQ} a.atttypid WHERE ${COLUMN} ` +
  `UNION SELECT e.parent, 'reaches a relation with hidden code' FROM hidden h JOIN (` +
  `SELECT f.conrelid AS child, f.confrelid AS parent FROM pg_catalog.pg_constraint f WHERE f.contype ${EQ} 'f' ` +
  `UNION ALL SELECT n.inhrelid, n.inhparent FROM pg_catalog.pg_inherits n) e ON e.child ${EQ} h.oid)`;

/** Relations whose writes may take a sequence value (kind `q`, see the module comment). */
const SEQUENCES =
  'seq(oid) AS (' +
  `SELECT a.adrelid FROM pg_catalog.pg_attrdef a WHERE pg_catalog.strpos(pg_catalog.pg_get_expr(a.adbin, a.adrelid), 'nextval') ${GT} 0 ` +
  `UNION SELECT a.attrelid FROM pg_catalog.pg_attribute a WHERE a.attidentity ${NE} '' AND NOT a.attisdropped ` +
  `UNION SELECT e.parent FROM seq h JOIN (` +
  `SELECT f.conrelid AS child, f.confrelid AS parent FROM pg_catalog.pg_constraint f WHERE f.contype ${EQ} 'f' ` +
  `UNION ALL SELECT n.inhrelid, n.inhparent FROM pg_catalog.pg_inherits n) e ON e.child ${EQ} h.oid)`;

export const HIDDEN_CODE_QUERY =
  `WITH RECURSIVE ${SAFE_CALLS}, ${UNSAFE_EXPRS}, ${TYPES}, ${RELATIONS}, ${SEQUENCES} ` +
  `SELECT 'n', c.relname::pg_catalog.text, pg_catalog.concat('relation ', c.relname, ' (', pg_catalog.min(h.why), ')') ` +
  `FROM hidden h JOIN pg_catalog.pg_class c ON c.oid ${EQ} h.oid GROUP BY c.relname ` +
  `UNION ALL SELECT 'n', t.typname::pg_catalog.text, pg_catalog.concat('type ', t.typname, ' (', pg_catalog.min(h.why), ')') ` +
  `FROM htypes h JOIN pg_catalog.pg_type t ON t.oid ${EQ} h.oid GROUP BY t.typname ` +
  `UNION ALL SELECT DISTINCT 'o', o.oprname::pg_catalog.text, NULL FROM pg_catalog.pg_operator o WHERE o.oid ${USER_OID} OR ` +
  ['o.oprcode', 'o.oprrest', 'o.oprjoin'].map(userProc).join(' OR ') +
  ` UNION ALL SELECT DISTINCT 'a', p.proname::pg_catalog.text, NULL FROM pg_catalog.pg_proc p ` +
  `WHERE p.oid ${USER_OID} AND p.prokind ${NE} 'p' AND p.pronargs ${GT} 0 ` +
  `AND p.pronargs OPERATOR(pg_catalog.-) p.pronargdefaults ${LE} 1 ` +
  `UNION ALL SELECT 'c', NULL, NULL WHERE EXISTS (SELECT FROM pg_catalog.pg_cast c WHERE ` +
  `(c.oid ${USER_OID} OR ${userProc('c.castfunc')}) AND c.castsource ${LT} ${FIRST_NORMAL_OBJECT_ID}::pg_catalog.oid ` +
  `AND c.casttarget ${LT} ${FIRST_NORMAL_OBJECT_ID}::pg_catalog.oid AND c.castfunc ${NE} 0::pg_catalog.oid) ` +
  `UNION ALL SELECT 's', NULL, pg_catalog.substr(g.cfg, 13) FROM pg_catalog.pg_db_role_setting s ` +
  `JOIN pg_catalog.pg_database db ON db.datname ${EQ} pg_catalog.current_database() ` +
  `CROSS JOIN LATERAL pg_catalog.unnest(s.setconfig) g(cfg) ` +
  `WHERE (s.setdatabase ${EQ} 0::pg_catalog.oid OR s.setdatabase ${EQ} db.oid) ` +
  `AND pg_catalog.starts_with(g.cfg, 'search_path=') ` +
  `UNION ALL SELECT DISTINCT 'q', c.relname::pg_catalog.text, NULL FROM seq q ` +
  `JOIN pg_catalog.pg_class c ON c.oid ${EQ} q.oid ` +
  `UNION ALL SELECT 'e', NULL, NULL WHERE EXISTS (SELECT FROM pg_catalog.pg_event_trigger ` +
  `WHERE evtenabled ${NE} 'D')`;
