import type { PGlite } from "@electric-sql/pglite";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle } from "drizzle-orm/postgres-js";
import type { Context } from "hono";
import postgres from "postgres";
import { preparedByDefault } from "./prepared.ts";
import * as schema from "./schema.ts";

/*
 * The database seen by domain code: drizzle over either driver. This module only pulls in postgres.js, so
 * it is the one Workers and Lambda entries import; the embedded PGlite driver and the file-reading migrator
 * live in node-only modules.
 */

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

interface Common {
  db: Db;
  close(): Promise<void>;
}

export type DbHandle =
  | (Common & { driver: "postgres"; client: postgres.Sql; url: string; schema: string | undefined })
  | (Common & { driver: "pglite"; client: PGlite });

export interface PostgresOptions {
  /** Postgres schema for the tables (search_path); lets tests and tenants share one database. */
  schema?: string | undefined;
  /** Pool size; 1 on Workers, where a connection cannot outlive its request. */
  max?: number;
  /**
   * Named (prepared) statements, described once per connection (default). False for a pooler that
   * cannot keep them across transactions (PgBouncer in transaction mode before 1.21): DATABASE_PREPARE=false.
   */
  prepare?: boolean;
  /**
   * PostgreSQL's `plan_cache_mode` for the connections, sent at start-up; "auto" sends nothing (the
   * server's default). See planCacheModeOf for the default of long-lived pools.
   */
  planCacheMode?: PlanCacheMode;
}

export const PLAN_CACHE_MODES = ["auto", "force_custom_plan", "force_generic_plan"] as const;
export type PlanCacheMode = (typeof PLAN_CACHE_MODES)[number];

/**
 * DATABASE_PLAN_CACHE_MODE for a long-lived pool: force_custom_plan unless set, and only with named
 * statements. A named statement's generic plan is made once, from the statistics of that moment, and kept
 * until the table is analysed: the batch UPDATEs planned while a fresh table was a few rows went on scanning
 * it whole as it grew (PostgreSQL 0.73-0.78x the CPU per order in the pipeline bench with custom plans, which
 * cost ~30 µs more planning per statement). "auto" is for a pooler that refuses unknown start-up parameters
 * (PgBouncer without `ignore_startup_parameters = plan_cache_mode`).
 */
export function planCacheModeOf(value: string | undefined, prepare: boolean): PlanCacheMode {
  if (value === undefined || value === "") return prepare ? "force_custom_plan" : "auto";
  if (!(PLAN_CACHE_MODES as readonly string[]).includes(value)) {
    throw new TypeError(
      `DATABASE_PLAN_CACHE_MODE must be one of ${PLAN_CACHE_MODES.join(", ")}, got "${value}"`,
    );
  }
  return value as PlanCacheMode;
}

/** A schema name safe to splice into DDL. */
export function assertSchemaName(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new TypeError(`invalid schema name "${name}"`);
  return name;
}

export function connectPostgres(url: string, options: PostgresOptions = {}): DbHandle {
  const schemaName = options.schema === undefined ? undefined : assertSchemaName(options.schema);
  const prepared = options.prepare !== false;
  const mode = options.planCacheMode ?? "auto";
  const client = postgres(url, {
    max: options.max ?? 10,
    // Off, it also holds back statements asked for by name (`.prepare(name)`), not just drizzle's others.
    prepare: prepared,
    onnotice: () => {},
    connection: {
      ...(schemaName ? { search_path: schemaName } : {}),
      ...(mode !== "auto" ? { plan_cache_mode: mode } : {}),
    },
  });
  const db = drizzle({ client: prepared ? preparedByDefault(client) : client, schema });
  return {
    driver: "postgres",
    db,
    client,
    url,
    schema: schemaName,
    close: () => client.end({ timeout: 5 }),
  };
}

/** How a function reaches its database for one request (per-request connection on Workers, a pool on Node). */
export type DbProvider = (c: Context) => Db;
