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

/** A required string setting, or MissingConfigError naming it. */
export function requireVar(vars: Vars, key: string): string {
  const value = vars[key];
  if (!value) throw new MissingConfigError(key);
  return value;
}
