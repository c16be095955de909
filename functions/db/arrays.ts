import { getTableColumns, is, SQL, sql, type Table } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { Db } from "./client.ts";
import { reusable } from "./prepared.ts";

/*
 * Batch statements whose text does not depend on the batch size. drizzle writes a list as `in ($1, …, $n)`
 * and rows as `values (…), (…)`: a new statement for every size, which drizzle builds again each time and
 * which PostgreSQL describes (one more round trip) and plans again on every connection. Lists passed as
 * one array parameter each give one text per call site, built and prepared once.
 * Arrays travel as text[] and are cast in SQL, so both drivers (postgres.js, PGlite) send them alike.
 */

/**
 * A column's type without its modifier (`varchar(3)` → `varchar`): an explicit cast to `varchar(3)` would cut
 * a longer value short where an INSERT or UPDATE refuses it, so values are cast to the base type and the
 * assignment to the column checks them as a plain VALUES list would.
 */
function typeOf(column: PgColumn): SQL {
  const type = column.getSQLType();
  if (type.endsWith("]")) throw new TypeError(`array column ${column.name} is not supported`);
  return sql.raw(type.replace(/\s*\(.*\)\s*$/, ""));
}

/**
 * A column's values as PostgreSQL text, through the column's own encoder (JSON, dates, numbers): the value
 * of an array placeholder (arrayAt, anyOfAt, valueByKeyAt) at execution.
 */
export function asText(column: PgColumn, values: readonly unknown[]): (string | null)[] {
  return values.map((v) => (v === null || v === undefined ? null : String(column.mapToDriverValue(v))));
}

/** An array of `column`'s type from a text[] parameter (a value or a placeholder). */
const typedArray = (column: PgColumn, param: unknown): SQL => sql`(${param}::text[])::${typeOf(column)}[]`;

/** One array parameter of `column`'s type. */
export const arrayOf = (column: PgColumn, values: readonly unknown[]): SQL =>
  typedArray(column, sql.param(asText(column, values)));

/** arrayOf for a statement built once: the placeholder `name`, given asText(column, values) at each call. */
const arrayAt = (column: PgColumn, name: string): SQL => typedArray(column, sql.placeholder(name));

/** `column = any(array)`: inArray's meaning with one statement text whatever the list's length. */
export const anyOf = (column: PgColumn, values: readonly unknown[]): SQL =>
  sql`${column} = any(${arrayOf(column, values)})`;

/** anyOf for a statement built once, the list in the placeholder `name` (see arrayAt). */
export const anyOfAt = (column: PgColumn, name: string): SQL =>
  sql`${column} = any(${arrayAt(column, name)})`;

/**
 * Each row's own value of `column` in one UPDATE: the value at the position of the row's key in the key
 * array (NULL for a row whose key is not listed, so pair it with a WHERE on the same keys). Keys and values
 * come in two placeholders (see arrayAt).
 */
export const valueByKeyAt = (key: PgColumn, column: PgColumn, keysName: string, valuesName: string): SQL =>
  sql`(${arrayAt(column, valuesName)})[array_position(${arrayAt(key, keysName)}, ${key})]`;

type Row = Record<string, unknown>;
type ColumnsOf<T extends Table> = readonly (keyof T["$inferInsert"] & string)[];

function columnsOf<T extends Table>(table: T, names: ColumnsOf<T>): [string, PgColumn][] {
  const all = getTableColumns(table) as Record<string, PgColumn>;
  return names.map((name) => {
    const column = all[name];
    if (!column) throw new TypeError(`${name} is not a column of the table`);
    return [name, column];
  });
}

function selectRows<T extends Table>(table: T, names: ColumnsOf<T>, array: (name: string) => SQL): SQL {
  const given = new Set<string>(names);
  const select = Object.entries(getTableColumns(table) as Record<string, PgColumn>).map(([name, column]) => {
    if (given.has(name)) return sql`u.${sql.identifier(name)}::${typeOf(column)}`;
    if (column.defaultFn || column.onUpdateFn)
      throw new TypeError(`column ${name} is filled in JavaScript: list it`);
    if (column.default !== undefined) {
      return is(column.default, SQL) ? column.default : sql`${column.default}::${typeOf(column)}`;
    }
    if (column.notNull) throw new TypeError(`column ${name} has no default: list it`);
    return sql`null`;
  });
  const arrays = names.map((name) => sql`${array(name)}::text[]`);
  const aliases = names.map((name) => sql.identifier(name));
  return sql`select ${sql.join(select, sql`, `)} from unnest(${sql.join(arrays, sql`, `)}) as u(${sql.join(aliases, sql`, `)})`;
}

const arrayText = (column: PgColumn, name: string, rows: readonly Row[]) =>
  asText(
    column,
    rows.map((r) => r[name]),
  );

/**
 * The SELECT of an `INSERT … SELECT` giving every column of `table` (drizzle's insert-select lists them
 * all): the listed columns from one array placeholder each (named after the column, filled at execution
 * with `rowArrays(table, names, rows)`), unnested side by side; every other column its default, else NULL.
 */
export const rowsOfPlaceholders = <T extends Table>(table: T, names: ColumnsOf<T>): SQL =>
  selectRows(table, names, (name) => sql`${sql.placeholder(name)}`);

/** The placeholder values of rowsOfPlaceholders for these rows. */
export function rowArrays<T extends Table>(
  table: T,
  names: ColumnsOf<T>,
  rows: readonly Row[],
): Record<string, (string | null)[]> {
  return Object.fromEntries(
    columnsOf(table, names).map(([name, column]) => [name, arrayText(column, name, rows)]),
  );
}

/**
 * A statement built once (see reusable) inserting rows given as arrays, `INSERT … SELECT` rowsOfPlaceholders, rows
 * that conflict skipped: one text whatever the number of rows. The rows inserted come back, every column
 * or the `returns` ones.
 */
export function insertMissing<T extends PgTable, Row = T["$inferSelect"]>(
  name: string,
  table: T,
  names: ColumnsOf<T>,
  returns?: Readonly<Record<string, PgColumn>>,
): (db: Db, rows: readonly Record<string, unknown>[]) => Promise<Row[]> {
  const statement = reusable<Row>(
    name,
    (db) => {
      const insert = db.insert(table).select(rowsOfPlaceholders(table, names)).onConflictDoNothing();
      return returns ? insert.returning(returns) : insert.returning();
    },
    returns ?? (getTableColumns(table) as Record<string, PgColumn>),
  );
  return (db, rows) => statement(db, rowArrays(table, names, rows));
}
