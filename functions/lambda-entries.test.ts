import { eq } from "drizzle-orm";
import type { LambdaEvent } from "hono/aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DbHandle } from "./db/client.ts";
import { processedMessages } from "./db/schema.ts";
import { createTestDb, type ServedTestDb, serveTestDb } from "./db/testing.ts";
import { seedStock } from "./inventory/stock.ts";

/**
 * The Lambda entries (`export const handler`), driven with API Gateway v2 events: they must find their
 * settings in the function's environment at request time and reach Postgres through lazyPostgres.
 */
let handle: DbHandle;
let served: ServedTestDb;
beforeAll(async () => {
  handle = await createTestDb();
  // The entries open their own postgres.js pool: PostgreSQL itself, or the PGlite instance served on a port.
  served = await serveTestDb(handle);
  // A Lambda's configuration is its process environment; this test file runs in its own worker.
  process.env.DATABASE_URL = served.url;
  if (served.schema) process.env.DATABASE_SCHEMA = served.schema;
  else delete process.env.DATABASE_SCHEMA;
  process.env.JETWAY_LOG_LEVEL = "silent";
  await seedStock(handle.db, { "sku-l": 3 });
});
afterAll(async () => {
  await served?.close();
  await handle?.close();
});

function event(method: string, path: string, body?: unknown): LambdaEvent {
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: path,
    rawQueryString: "",
    headers: { "content-type": "application/json", host: "fn.lambda-url.eu-west-1.on.aws" },
    body: body === undefined ? null : JSON.stringify(body),
    isBase64Encoded: false,
    requestContext: {
      accountId: "1",
      apiId: "a",
      authentication: null,
      authorizer: {},
      domainName: "fn.lambda-url.eu-west-1.on.aws",
      domainPrefix: "fn",
      http: { method, path, protocol: "HTTP/1.1", sourceIp: "127.0.0.1", userAgent: "test" },
      requestId: "r",
      routeKey: "$default",
      stage: "$default",
      time: "01/Jan/2026:00:00:00 +0000",
      timeEpoch: 0,
    },
  };
}

describe("Lambda entries", () => {
  it("inventory reads stock through its lazily opened pool", async () => {
    const { handler } = await import("./inventory/lambda.ts");
    const res = await handler(event("GET", "/stock/sku-l"));
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ sku: "sku-l", available: 3 });
  });

  it("order validates and serves reads", async () => {
    const { handler } = await import("./order/lambda.ts");
    const invalid = await handler(event("POST", "/orders", { items: [] }));
    expect(invalid.statusCode).toBe(422);
    expect((await handler(event("GET", "/orders/ord_none"))).statusCode).toBe(404);
  });

  it("order runs the housekeeping task a schedule's event names", async () => {
    const { handler } = await import("./order/lambda.ts");
    const stale = { consumer: "order", message_id: `lambda-${Date.now()}` };
    await handle.db
      .insert(processedMessages)
      .values({ ...stale, processed_at: new Date(Date.now() - 8 * 86_400_000) });
    const ours = eq(processedMessages.message_id, stale.message_id);
    const run = await handler({ jetway_housekeeping: "processed-prune" });
    expect(run).toEqual({ task: "processed-prune", calls: [expect.objectContaining({ more: false })] });
    expect(await handle.db.select().from(processedMessages).where(ours)).toEqual([]);
    await expect(handler({ jetway_housekeeping: "reindex" } as never)).rejects.toThrow(/jetway_housekeeping/);
  });
});
