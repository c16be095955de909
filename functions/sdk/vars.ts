import type { Context } from "hono";
import { env, getRuntimeKey } from "hono/adapter";
import type { Vars } from "./types.ts";

/** The runtime cannot change under a running process: found once, not on every env(c) (~0.5 µs a call). */
const RUNTIME = getRuntimeKey();

/**
 * Per-request string configuration. `env(c)` is process.env on Node/Lambda and the bindings on Workers;
 * string values of `c.env` are merged over it so explicit bindings (and `app.request(…, env)` in tests) win.
 * Without such values the base is returned as it is, and with them it is the prototype of the result:
 * copying process.env on every request cost a sixth of a minimal function's CPU. Treat the result as
 * read-only; read it by key (its own keys are only the overrides).
 */
export function requestVars(c: Context): Vars {
  const base = env(c, RUNTIME) as Record<string, unknown>;
  const own: unknown = c.env;
  // Workers: env(c) is the bindings object itself (small); keep its string values only.
  if (own === base) return stringValues(base);
  let merged: Vars | undefined;
  if (typeof own === "object" && own !== null) {
    for (const k in own) {
      const v = (own as Record<string, unknown>)[k];
      if (typeof v !== "string") continue;
      // The base stays the prototype: reads fall through to it without copying every variable.
      merged ??= Object.create(base) as Vars;
      merged[k] = v;
    }
  }
  return merged ?? (base as Vars);
}

function stringValues(source: Record<string, unknown>): Vars {
  const out: Vars = {};
  for (const [k, v] of Object.entries(source)) if (typeof v === "string") out[k] = v;
  return out;
}
