#!/usr/bin/env node
import { type Command, exitCodeFor, UsageError } from "../bridge/cli/common.ts";

type Entry = [summary: string, load: () => Promise<{ command: Command }>];

/** One line per command; modules load lazily so `jetway dlq` never pulls in the bridge's HTTP stack. */
const COMMANDS: Record<string, Entry> = {
  bridge: ["run the NATS JetStream → HTTP bridge", () => import("../bridge/cli/bridge.ts")],
  provision: [
    "create or update streams and consumers, then exit",
    () => import("../bridge/cli/provision.ts"),
  ],
  dlq: ["list, show, redrive and drop dead letters", () => import("../bridge/cli/dlq.ts")],
  pause: [
    "pause a route on every bridge replica (or list paused routes)",
    () => import("../bridge/cli/pause.ts"),
  ],
  resume: [
    "resume a paused route on every bridge replica",
    async () => ({ command: (await import("../bridge/cli/pause.ts")).resumeCommand }),
  ],
  status: [
    "each route's lag, messages out, retries, dead letters and pause",
    () => import("../bridge/cli/status.ts"),
  ],
  dev: ["run NATS, every function and the bridge locally", () => import("../bridge/cli/dev.ts")],
  invoke: ["send one event file to a function, without NATS", () => import("../bridge/cli/invoke.ts")],
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, [summary]]) => `  ${name.padEnd(10)} ${summary}`);
  return ["usage: jetway <command> [options]", "", "commands:", ...lines].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`unknown command "${name}"\n${usage()}\n`);
    return 2;
  }
  const { command } = await entry[1]();
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`usage: ${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    const code = exitCodeFor(error);
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`jetway ${name}: ${message}\n`);
    if (error instanceof UsageError) process.stderr.write(`usage: ${command.usage}\n`);
    return code;
  }
}

process.exitCode = await main(process.argv.slice(2));
