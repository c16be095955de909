import type { Context } from "hono";
import { env } from "hono/adapter";

/** A required setting is missing from the function's environment. */
export class MissingConfigError extends Error {
  override name = "MissingConfigError";
  constructor(key: string) {
    super(`${key} is not set`);
  }
}

export type Vars = Record<string, string | undefined>;

/**
 * The request's string settings: the runtime's env (process.env on Node and Lambda, bindings on Workers)
 * with string values of `c.env` on top, so explicit bindings — and `app.request(…, env)` in tests — win.
 */
export function requestVars(c: Context): Vars {
  const vars: Vars = {};
  for (const source of [env(c), c.env as unknown]) {
    if (typeof source !== "object" || source === null) continue;
    for (const [k, v] of Object.entries(source)) if (typeof v === "string") vars[k] = v;
  }
  return vars;
}

/** A required string setting, or MissingConfigError naming it. */
export function requireVar(vars: Vars, key: string): string {
  const value = vars[key];
  if (!value) throw new MissingConfigError(key);
  return value;
}
