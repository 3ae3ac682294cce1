/**
 * Spells a name as an SQL identifier, in double quotes only when it has to be: when it is not a
 * plain lowercase identifier or is a keyword the grammar would read as something else. Quoting a
 * name that did not need it changes nothing (`"abc"` and `abc` are the same name), so the keyword
 * list leans to the generous side: PostgreSQL's reserved, type/function-name and column-name
 * keywords (https://www.postgresql.org/docs/current/sql-keywords-appendix.html).
 */

const KEYWORDS = new Set(
  // reserved
  (
    'all analyse analyze and any array as asc asymmetric both case cast check collate column constraint ' +
    'create current_catalog current_date current_role current_time current_timestamp current_user default ' +
    'deferrable desc distinct do else end except false fetch for foreign from grant group having in ' +
    'initially intersect into lateral leading limit localtime localtimestamp not null offset on only or ' +
    'order placing primary references returning select session_user some symmetric system_user table then ' +
    'to trailing true union unique user using variadic when where window with ' +
    // reserved (can be function or type name)
    'authorization binary collation concurrently cross current_schema freeze full ilike inner is isnull ' +
    'join left like natural notnull outer overlaps right similar tablesample verbose ' +
    // non-reserved (cannot be function or type name)
    'between bigint bit boolean char character coalesce dec decimal exists extract float greatest grouping ' +
    'inout int integer interval json json_array json_arrayagg json_exists json_object json_objectagg ' +
    'json_query json_scalar json_serialize json_table json_value least merge_action national nchar none ' +
    'normalize nullif numeric out overlay position precision real row setof smallint substring time ' +
    'timestamp treat trim values varchar xmlattributes xmlconcat xmlelement xmlexists xmlforest ' +
    'xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable'
  ).split(' '),
);

export function quoteIdentifier(name: string): string {
  if (/^[a-z_][a-z0-9_]*$/.test(name) && !KEYWORDS.has(name)) return name;
  return `"${name.replaceAll('"', '""')}"`;
}
