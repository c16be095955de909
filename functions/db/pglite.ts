import { mkdir } from "node:fs/promises";
import { PGlite } from "@electric-sql/pglite";
import { drizzle } from "drizzle-orm/pglite";
import type { DbHandle } from "./client.ts";
import * as schema from "./schema.ts";

/**
 * Embedded Postgres (WASM) for local development without a server. `dataDir` undefined → in memory.
 * One process at a time may open a data directory, so each function gets its own (see createDb).
 */
export async function openPglite(dataDir?: string): Promise<DbHandle> {
  if (dataDir) await mkdir(dataDir, { recursive: true });
  const client = await PGlite.create(dataDir);
  const db = drizzle({ client, schema });
  return { driver: "pglite", db, client, close: () => client.close() };
}
