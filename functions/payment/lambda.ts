import { handle } from "hono/aws-lambda";
import { lazyPostgres } from "../db/providers.ts";
import { createNodeFetch } from "../sdk/node-fetch.ts";
import { createPayment, gatewayFetchOptions } from "./app.ts";

// AWS Lambda (function URL or API Gateway): DATABASE_URL and GATEWAY_URL in the function's environment.
const fetch = createNodeFetch(gatewayFetchOptions(process.env));
export const handler = handle(createPayment({ db: lazyPostgres(), fetch }).app);
