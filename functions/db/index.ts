import { join } from "node:path";
import { connectPostgres, type DbHandle, planCacheModeOf } from "./client.ts";
import { openPglite } from "./pglite.ts";

export type { Db, DbHandle, DbProvider } from "./client.ts";
export { connectPostgres } from "./client.ts";
export { MIGRATIONS_DIR, migrate } from "./migrate.ts";

export interface DbEnv {
  /** postgres://… → Postgres through postgres.js. Unset → embedded PGlite. */
  DATABASE_URL?: string | undefined;
  /** Postgres schema for the tables (search_path). */
  DATABASE_SCHEMA?: string | undefined;
  /** "false": no named (prepared) statements, for a pooler that cannot keep them (see connectPostgres). */
  DATABASE_PREPARE?: string | undefined;
  /** auto | force_custom_plan (default with named statements) | force_generic_plan: see planCacheModeOf. */
  DATABASE_PLAN_CACHE_MODE?: string | undefined;
  /** PGlite data directory, or "memory". Default `.jetway/pglite/<name>`. */
  PGLITE_DIR?: string | undefined;
}

/**
 * The Node-side database factory. Without DATABASE_URL it opens PGlite; a PGlite directory admits one
 * process, so each function defaults to its own directory — they share no tables, so nothing is lost.
 */
export async function createDb(env: DbEnv, { name = "default" }: { name?: string } = {}): Promise<DbHandle> {
  if (env.DATABASE_URL) {
    const prepare = env.DATABASE_PREPARE !== "false";
    return connectPostgres(env.DATABASE_URL, {
      schema: env.DATABASE_SCHEMA,
      prepare,
      planCacheMode: planCacheModeOf(env.DATABASE_PLAN_CACHE_MODE, prepare),
    });
  }
  if (env.PGLITE_DIR === "memory") return openPglite();
  return openPglite(env.PGLITE_DIR ?? join(".jetway", "pglite", name));
}
