import { type APIGatewayProxyResult, handle, type LambdaContext, type LambdaEvent } from "hono/aws-lambda";
import { lazyPostgres } from "../db/providers.ts";
import { createNodeFetch } from "../sdk/node-fetch.ts";
import { createOrder } from "./app.ts";
import {
  type HousekeepingEvent,
  type HousekeepingResult,
  housekeepingTaskOf,
  runHousekeeping,
} from "./housekeeping.ts";

// AWS Lambda: DATABASE_URL and JETWAY_PUBLISH_URL in the function's environment. Besides HTTP events from
// its function URL it takes `{ "jetway_housekeeping": "outbox-flush" | "processed-prune" }`, the event the
// schedules in sst.config.ts send (housekeeping.ts).
const order = createOrder({ db: lazyPostgres(), fetch: createNodeFetch() });
const http = handle(order.app);

export function handler(event: HousekeepingEvent): Promise<HousekeepingResult>;
export function handler(event: LambdaEvent, context?: LambdaContext): Promise<APIGatewayProxyResult>;
export async function handler(
  event: LambdaEvent | HousekeepingEvent,
  context?: LambdaContext,
): Promise<APIGatewayProxyResult | HousekeepingResult> {
  const task = housekeepingTaskOf(event);
  if (task === undefined) return http(event as LambdaEvent, context);
  const result = await runHousekeeping(task, (request) => order.app.fetch(request, process.env), process.env);
  order.log.info({ ...result }, "housekeeping done");
  return result;
}
