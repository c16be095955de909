import { defineConfig } from "vitest/config";

// Integration tests start their own nats-server processes; two cores means few workers.
export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/.wrangler/**"],
    // Decides PostgreSQL or embedded PGlite once per run (functions/db/testing.ts).
    globalSetup: ["functions/db/test-db-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    reporters: process.env.CI ? ["default"] : ["default"],
  },
});
