import type { Context } from "hono";
import type { Db } from "../db/client.ts";
import { requestVars } from "../db/env.ts";
import { pruneProcessed } from "../db/processed.ts";

/** A 401 response when JETWAY_ADMIN_TOKEN is set and the request does not carry it; else undefined. */
export function refuseWithoutAdmin(c: Context): Response | undefined {
  const admin = requestVars(c).JETWAY_ADMIN_TOKEN;
  if (admin && c.req.header("authorization") !== `Bearer ${admin}`) {
    return c.json({ error: { code: "unauthorized", message: "admin token required" } }, 401);
  }
  return undefined;
}

/** Records younger than this are kept whatever is asked: the routes' redeliveries arrive within minutes. */
export const MIN_RETENTION_S = 3_600;
export const DEFAULT_RETENTION_S = 7 * 86_400;
const ROWS_PER_STATEMENT = 5_000;
/** One call's work, so a scheduler's request stays short; `more` says to call again. */
const STATEMENTS_PER_CALL = 20;

/**
 * POST /orders/processed/prune?older_than_s=N: forgets which payment and inventory events the order
 * function applied more than N seconds ago (default 7 days, at least an hour), in statements of 5,000
 * rows. Run it from a scheduler, with N longer than any replay of the PAYMENTS and INVENTORY streams.
 */
export async function pruneApplied(c: Context, db: Db): Promise<Response> {
  const asked = c.req.query("older_than_s");
  const olderThanS = asked === undefined ? DEFAULT_RETENTION_S : Number(asked);
  if (!Number.isInteger(olderThanS) || olderThanS < MIN_RETENTION_S) {
    return c.json(
      {
        error: {
          code: "invalid_request",
          message: `older_than_s must be a whole number of seconds >= ${MIN_RETENTION_S}`,
          fields: ["older_than_s"],
        },
      },
      400,
    );
  }
  let deleted = 0;
  for (let i = 0; i < STATEMENTS_PER_CALL; i++) {
    const n = await pruneProcessed(db, olderThanS, ROWS_PER_STATEMENT);
    deleted += n;
    if (n < ROWS_PER_STATEMENT) return c.json({ deleted, more: false });
  }
  return c.json({ deleted, more: true });
}
