import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { connectPostgres, type DbHandle } from "./client.ts";
import { migrate } from "./migrate.ts";

export const TEST_DATABASE_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";

/**
 * A migrated Postgres database in a fresh, randomly named schema, so test files running in parallel never
 * see each other's rows. `close()` drops the schema.
 */
export async function createTestDb(): Promise<DbHandle> {
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const handle = connectPostgres(TEST_DATABASE_URL, { schema });
  await migrate(handle);
  return {
    ...handle,
    async close() {
      await handle.close();
      const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop schema if exists "${schema}" cascade`);
      } finally {
        await admin.end({ timeout: 5 });
      }
    },
  };
}
