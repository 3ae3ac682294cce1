/**
 * The command tag of a statement run on several groups, as one PostgreSQL would give it: the row
 * counts of the parts of a split INSERT summed (`INSERT 0 3` and `INSERT 0 2` are `INSERT 0 5`),
 * any other tag as the first part gave it (DDL tags carry no count; a reference table's copies
 * give the same count on every group, and only group 0's is passed here). Pure.
 */

/** Tags whose last number is a row count. */
const COUNTED = /^(INSERT \d+|UPDATE|DELETE|SELECT|MERGE|COPY|MOVE|FETCH) (\d+)$/;

export function sumTags(tags: readonly string[]): string {
  const first = tags[0] ?? '';
  if (tags.length === 1) return first;
  const m = COUNTED.exec(first);
  if (m === null) return first;
  let total = 0;
  for (const t of tags) {
    const x = COUNTED.exec(t);
    if (x === null || x[1] !== m[1]) return first;
    total += Number(x[2]);
  }
  return `${m[1]} ${total}`;
}
