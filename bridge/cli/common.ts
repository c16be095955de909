import { type ParseArgsConfig, parseArgs } from "node:util";
import { type Config, ConfigError, loadConfig } from "../config.ts";

/** Wrong command line: the dispatcher prints the command's usage and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** What a command module exports; the dispatcher needs nothing else. */
export interface Command {
  usage: string;
  /** One line for help output (the dispatcher keeps its own copy so help loads no command). */
  summary?: string;
  run(argv: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

export const CONFIG_OPTION = { config: { type: "string", short: "c" } } as const satisfies Options;

/** node:util parseArgs in strict mode, with its errors turned into UsageError. */
export function parseFlags<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (cause) {
    throw new UsageError((cause as Error).message, { cause });
  }
}

/** Reads --config (required); a ConfigError propagates for the dispatcher to print and exit 2. */
export async function configFrom(path: string | undefined): Promise<Config> {
  if (!path) {
    throw new UsageError(
      "--config FILE is required (the bridge's config; `jetway dev` writes .jetway/bridge.dev.yaml)",
    );
  }
  return loadConfig(path);
}

/** Exit code and message for an error escaping a command. */
export function exitCodeFor(error: unknown): number {
  return error instanceof UsageError || error instanceof ConfigError ? 2 : 1;
}
