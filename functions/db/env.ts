/** A required setting is missing from the function's environment. */
export class MissingConfigError extends Error {
  override name = "MissingConfigError";
  constructor(key: string) {
    super(`${key} is not set`);
  }
}

export type Vars = Record<string, string | undefined>;

/** The request's string settings (the SDK's view: runtime env with string `c.env` values on top). */
export { requestVars } from "../sdk/vars.ts";

/** A setting is there but cannot be used; the message names it and says what it takes. */
export class InvalidConfigError extends Error {
  override name = "InvalidConfigError";
  constructor(key: string, value: string, expected: string) {
    super(`${key} must be ${expected}, got "${value}"`);
  }
}

/** An optional whole-number setting of at least 1: `fallback` when unset, InvalidConfigError naming it otherwise. */
export function positiveIntVar(vars: Vars, key: string, fallback: number): number {
  const value = vars[key];
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidConfigError(key, value, "a whole number of at least 1");
  return n;
}

/** A required string setting, or MissingConfigError naming it. */
export function requireVar(vars: Vars, key: string): string {
  const value = vars[key];
  if (!value) throw new MissingConfigError(key);
  return value;
}
