import { handle } from "hono/aws-lambda";
import { lazyPostgres } from "../db/providers.ts";
import { createNodeFetch } from "../sdk/node-fetch.ts";
import { createOrder } from "./app.ts";

// AWS Lambda: DATABASE_URL and JETWAY_PUBLISH_URL in the function's environment.
export const handler = handle(createOrder({ db: lazyPostgres(), fetch: createNodeFetch() }).app);
