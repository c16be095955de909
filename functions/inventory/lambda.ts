import { handle } from "hono/aws-lambda";
import { lazyPostgres } from "../db/providers.ts";
import { createInventory } from "./app.ts";

// AWS Lambda: DATABASE_URL in the function's environment.
export const handler = handle(createInventory({ db: lazyPostgres() }).app);
