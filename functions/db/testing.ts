import { randomBytes } from "node:crypto";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import postgres from "postgres";
import { isListening } from "../../bridge/nats-server.ts";
import { connectPostgres, type DbHandle } from "./client.ts";
import { migrate } from "./migrate.ts";
import { openPglite } from "./pglite.ts";

/*
 * The one place that decides which database the tests use. Production and CI run against real
 * PostgreSQL; a fresh laptop without a server falls back to embedded PGlite with the same migrations.
 */

const DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test";

export type TestDbChoice =
  | { driver: "postgres"; url: string }
  | { driver: "pglite"; reason: "forced" | "no-postgres" };

/** CI found no PostgreSQL: it must test against the real server, so this is an error, not a fallback. */
export class TestDbUnavailableError extends Error {
  override name = "TestDbUnavailableError";
  constructor() {
    super(
      "CI=true but no PostgreSQL accepts connections at 127.0.0.1:5432 and DATABASE_URL is not set; " +
        "CI must test against a real PostgreSQL (set DATABASE_URL, or JETWAY_TEST_DB=pglite to force the embedded one)",
    );
  }
}

export const PGLITE_NOTICE =
  "jetway tests: no PostgreSQL found (DATABASE_URL unset, nothing listening at 127.0.0.1:5432), so tests " +
  "use embedded PGlite; set DATABASE_URL=postgresql://user@host:5432/db to test against a real PostgreSQL.\n";

/**
 * JETWAY_TEST_DB=postgres|pglite forces a driver; otherwise DATABASE_URL or a server at 127.0.0.1:5432
 * means PostgreSQL, CI=true without one is an error, and anything else falls back to PGlite.
 */
export async function decideTestDb(
  env: NodeJS.ProcessEnv = process.env,
  postgresListening: () => Promise<boolean> = () => isListening(5432, "127.0.0.1"),
): Promise<TestDbChoice> {
  const url = env.DATABASE_URL || DEFAULT_URL;
  const forced = env.JETWAY_TEST_DB;
  if (forced === "postgres") return { driver: "postgres", url };
  if (forced === "pglite") return { driver: "pglite", reason: "forced" };
  if (forced) throw new TypeError(`JETWAY_TEST_DB must be "postgres" or "pglite", not "${forced}"`);
  if (env.DATABASE_URL || (await postgresListening())) return { driver: "postgres", url };
  if (env.CI === "true") throw new TestDbUnavailableError();
  return { driver: "pglite", reason: "no-postgres" };
}

let decided: Promise<TestDbChoice> | undefined;

/**
 * This process's choice, decided once. vitest's global setup (test-db-setup.ts) decides for the whole run
 * and passes it on in JETWAY_TEST_DB, so the fallback notice is printed once, not once per worker.
 */
export function testDb(): Promise<TestDbChoice> {
  decided ??= decideTestDb().then((choice) => {
    if (choice.driver === "pglite" && choice.reason === "no-postgres") process.stderr.write(PGLITE_NOTICE);
    return choice;
  });
  return decided;
}

/**
 * A migrated database of the test's own: on PostgreSQL a fresh, randomly named schema (test files run in
 * parallel never see each other's rows; `close()` drops it), on PGlite a fresh in-memory instance.
 */
export async function createTestDb(): Promise<DbHandle> {
  const choice = await testDb();
  if (choice.driver === "pglite") {
    const handle = await openPglite();
    await migrate(handle);
    return handle;
  }
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const handle = connectPostgres(choice.url, { schema });
  await migrate(handle);
  return {
    ...handle,
    async close() {
      await handle.close();
      const admin = postgres(choice.url, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop schema if exists "${schema}" cascade`);
      } finally {
        await admin.end({ timeout: 5 });
      }
    },
  };
}

/** Where a client outside this process (workerd, a Lambda entry's own pool) reaches a test database. */
export interface ServedTestDb {
  url: string;
  /** DATABASE_SCHEMA for the client; undefined on PGlite, whose tables live in `public`. */
  schema: string | undefined;
  close(): Promise<void>;
}

/**
 * A connection string for `handle`: PostgreSQL's own, or PGlite served over TCP on a free port. PGlite runs
 * one query at a time; the socket server queues the connections and keeps a transaction on its connection.
 */
export async function serveTestDb(handle: DbHandle): Promise<ServedTestDb> {
  if (handle.driver === "postgres") return { url: handle.url, schema: handle.schema, close: async () => {} };
  const server = new PGLiteSocketServer({
    db: handle.client,
    host: "127.0.0.1",
    port: 0,
    maxConnections: 32,
  });
  await server.start();
  return {
    url: `postgresql://postgres@${server.getServerConn()}/postgres`,
    schema: undefined,
    close: () => server.stop(),
  };
}
