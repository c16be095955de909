import { defineConfig } from "drizzle-kit";

// `drizzle-kit generate --config functions/db/drizzle.config.ts` after a schema change.
export default defineConfig({
  dialect: "postgresql",
  schema: "./functions/db/schema.ts",
  out: "./functions/db/migrations",
});
