import type { PgColumn } from "drizzle-orm/pg-core";
import type postgres from "postgres";
import type { Db } from "./client.ts";

type Sql = postgres.Sql;
type Callback = (sql: Sql) => unknown;

/**
 * A postgres.js client whose statements are all named (prepared) ones. drizzle runs every statement it
 * was not told to `.prepare()` with `prepare: false`, and postgres.js describes an unnamed statement with
 * parameters before it binds it: two round trips for every query, every time (~350 µs of client CPU per
 * statement here, against ~180 in one). A named statement is described once per connection and text,
 * then bound and run in one. Transactions and savepoints get their client wrapped the same way.
 */
export function preparedByDefault(client: Sql): Sql {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === "unsafe") {
        return (query: string, params?: unknown[], options?: postgres.UnsafeQueryOptions) =>
          target.unsafe(query, params as never, { ...options, prepare: true });
      }
      if (property === "begin" || property === "savepoint") {
        const original = Reflect.get(target, property, target) as (...args: unknown[]) => unknown;
        return (...args: unknown[]) => {
          const callback = args.at(-1) as Callback;
          return original.apply(target, [
            ...args.slice(0, -1),
            (sql: Sql) => callback(preparedByDefault(sql)),
          ]);
        };
      }
      return Reflect.get(target, property, receiver);
    },
  });
}

/**
 * One `make(db)` per database handle, such as a batcher of its statements. A Workers request has a handle of
 * its own, so nothing is shared across requests.
 */
export function perHandle<T>(make: (db: Db) => T): (db: Db) => T {
  const made = new WeakMap<Db, T>();
  return (db) => {
    let value = made.get(db);
    if (value === undefined) {
      value = make(db);
      made.set(db, value);
    }
    return value;
  };
}

/** What a drizzle query builder gives: its text, with sql.placeholder() where each call's values go. */
interface Buildable {
  toSQL(): { sql: string; params: unknown[] };
}

/** Array rows (the columns in the order the statement lists them) → objects, through each column's decoder. */
function rowsAs<Row>(columns: Readonly<Record<string, PgColumn>>): (rows: unknown[][]) => Row[] {
  const entries = Object.entries(columns);
  return (rows) =>
    rows.map((row) => {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < entries.length; i++) {
        const [key, column] = entries[i] as [string, PgColumn];
        const value = row[i];
        out[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
      }
      return out as Row;
    });
}

/**
 * A statement drizzle builds once and any handle runs, a transaction's included. drizzle builds a statement
 * again on every call inside a transaction (a `.prepare()`d one stays bound to the handle it was made on),
 * at tens of µs of CPU each; this keeps the text and its placeholders and runs them through the handle's
 * own session (named, like every statement of a pool that prepares).
 *   build: the statement, its per-call values as sql.placeholder(name); its text must not depend on them.
 *   returns: the columns the statement returns, in its RETURNING / SELECT order; omitted when it returns none.
 */
export function reusable<Row = never>(
  name: string,
  build: (db: Db) => Buildable,
  returns?: Readonly<Record<string, PgColumn>>,
): (db: Db, values: Record<string, unknown>) => Promise<Row[]> {
  let query: { sql: string; params: unknown[] } | undefined;
  const mapRows = returns ? rowsAs<Row>(returns) : undefined;
  return async (db, values) => {
    query ??= build(db).toSQL();
    const statement = db._.session.prepareQuery(query, undefined, name, true, mapRows);
    const rows = (await statement.execute(values)) as Row[];
    return mapRows ? rows : [];
  };
}
