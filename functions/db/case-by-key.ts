import { type AnyColumn, type SQL, sql } from "drizzle-orm";

/**
 * `CASE key WHEN k1 THEN v1 WHEN k2 THEN v2 … END`: one UPDATE giving each row of a batch its own value,
 * instead of one statement per row (each a query to build, send and plan). Rows whose key is not listed
 * get NULL, so pair it with a WHERE on the same keys.
 */
export function caseByKey<T>(
  key: AnyColumn,
  rows: readonly T[],
  keyOf: (row: T) => string,
  value: (row: T) => unknown,
): SQL {
  return sql`case ${key} ${sql.join(
    rows.map((row) => sql`when ${keyOf(row)} then ${value(row)}`),
    sql` `,
  )} end`;
}
