import type { Context } from "hono";
import { env } from "hono/adapter";
import { connectPostgres, type DbHandle, type DbProvider, planCacheModeOf } from "./client.ts";
import { MissingConfigError } from "./env.ts";

/*
 * Database providers for the serverless entries. Both read DATABASE_URL (or a Workers Hyperdrive binding)
 * per request from the runtime's env, never from process.env at module load.
 */

interface Connection {
  url: string;
  schema: string | undefined;
  prepare: boolean;
  planCacheMode: string | undefined;
}

function connectionString(c: Context): Connection {
  const vars = env<Record<string, unknown>>(c);
  const hyperdrive = vars.HYPERDRIVE as { connectionString?: string } | undefined;
  const url =
    hyperdrive?.connectionString ?? (typeof vars.DATABASE_URL === "string" ? vars.DATABASE_URL : "");
  if (!url) throw new MissingConfigError("DATABASE_URL (or a HYPERDRIVE binding)");
  const schema = typeof vars.DATABASE_SCHEMA === "string" ? vars.DATABASE_SCHEMA : undefined;
  const planCacheMode =
    typeof vars.DATABASE_PLAN_CACHE_MODE === "string" ? vars.DATABASE_PLAN_CACHE_MODE : undefined;
  return { url, schema, prepare: vars.DATABASE_PREPARE !== "false", planCacheMode };
}

/** Lambda and long-lived hosts: one pool, opened on first use and kept for the container's life. */
export function lazyPostgres(): DbProvider {
  let handle: DbHandle | undefined;
  return (c) => {
    if (!handle) {
      const { url, schema, prepare, planCacheMode } = connectionString(c);
      handle = connectPostgres(url, {
        schema,
        max: 2,
        prepare,
        planCacheMode: planCacheModeOf(planCacheMode, prepare),
      });
    }
    return handle.db;
  };
}

/** Any app with Hono's fetch signature. */
interface FetchApp {
  fetch(request: Request, env?: object, ctx?: never): Response | Promise<Response>;
}

interface WorkerExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

/**
 * Workers: a socket belongs to the request that opened it, so each request gets its own single
 * connection, closed after the response via waitUntil. Export `perRequest.handler(app)` as the Worker.
 */
export function perRequestPostgres() {
  const open = new WeakMap<Request, DbHandle>();
  const db: DbProvider = (c) => {
    let handle = open.get(c.req.raw);
    if (!handle) {
      const { url, schema, prepare, planCacheMode } = connectionString(c);
      // A connection lives for one request, too short for a generic plan (from a statement's sixth run):
      // nothing is sent unless asked for, which also suits Hyperdrive.
      handle = connectPostgres(url, {
        schema,
        max: 1,
        prepare,
        planCacheMode: planCacheMode === undefined ? "auto" : planCacheModeOf(planCacheMode, prepare),
      });
      open.set(c.req.raw, handle);
    }
    return handle.db;
  };
  const handler = (app: FetchApp) => ({
    async fetch(request: Request, bindings: unknown, ctx: WorkerExecutionContext): Promise<Response> {
      try {
        return await app.fetch(request, bindings as object, ctx as never);
      } finally {
        const handle = open.get(request);
        if (handle) ctx.waitUntil(handle.close());
      }
    },
  });
  return { db, handler };
}
