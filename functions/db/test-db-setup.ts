import { testDb } from "./testing.ts";

/**
 * vitest global setup: decide the test database once for the whole run (printing the PGlite notice once)
 * and hand the choice to the workers in JETWAY_TEST_DB. On an error (CI without PostgreSQL) it says so
 * here and leaves the choice open, so every database test fails with the same message and others still run.
 */
export default async function setup(): Promise<void> {
  try {
    process.env.JETWAY_TEST_DB = (await testDb()).driver;
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  }
}
