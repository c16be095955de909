import { parseArgs } from "node:util";
import type { Side } from "./compare-stats.ts";

export interface CompareArgs {
  /** The base's commit; undefined compares this checkout with itself under different environments. */
  ref: string | undefined;
  rounds: number;
  /** Flags for every bench/run.ts run. */
  runFlags: string[];
  /** Variables set for one side's runs only (a nats-server binary, GOMAXPROCS, NODE_OPTIONS…). */
  env: Record<Side, Record<string, string>>;
}

export const COMPARE_USAGE =
  "usage: compare.ts [<git-ref>] [--rounds 4] [--only bridge,pipeline] [--base-env NAME=VALUE]… " +
  "[--head-env NAME=VALUE]… [-- run.ts flags]; without a ref, one of the env flags";

export class CompareArgsError extends Error {
  override name = "CompareArgsError";
}

function envOf(flag: string, pairs: string[] | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const at = pair.indexOf("=");
    const name = pair.slice(0, at);
    if (at <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      throw new CompareArgsError(`--${flag} takes NAME=VALUE, got "${pair}"`);
    env[name] = pair.slice(at + 1);
  }
  return env;
}

/** Reads bench:compare's command line: what comes after `--` goes to bench/run.ts untouched. */
export function parseCompareArgs(argv: string[]): CompareArgs {
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    allowPositionals: true,
    tokens: true,
    options: {
      rounds: { type: "string", default: "4" },
      only: { type: "string", default: "ceiling-http,bridge" },
      "base-env": { type: "string", multiple: true },
      "head-env": { type: "string", multiple: true },
    },
  });
  const terminator = tokens.find((t) => t.kind === "option-terminator");
  const before = terminator
    ? positionals.slice(0, tokens.filter((t) => t.kind === "positional" && t.index < terminator.index).length)
    : positionals;
  const passThrough = positionals.slice(before.length);
  if (before.length > 1)
    throw new CompareArgsError(`one git ref at most, got ${before.join(" ")}\n${COMPARE_USAGE}`);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new CompareArgsError(`--rounds must be a positive integer, got ${values.rounds}`);
  const env = { base: envOf("base-env", values["base-env"]), head: envOf("head-env", values["head-env"]) };
  const ref = before[0];
  if (ref === undefined && Object.keys(env.base).length + Object.keys(env.head).length === 0)
    throw new CompareArgsError(`nothing to compare: give a git ref or an env flag\n${COMPARE_USAGE}`);
  return { ref, rounds, runFlags: ["--only", values.only ?? "", ...passThrough], env };
}
