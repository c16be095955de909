import { hostname, userInfo } from "node:os";
import type { KV } from "@nats-io/kv";
import type { Config } from "../config.ts";
import { listPauses, openControl, type PauseRecord, pauseKey } from "../control.ts";
import { parseDuration } from "../duration.ts";
import { connectNats } from "../nats.ts";
import { CONFIG_OPTION, type Command, configFrom, parseFlags, UsageError } from "./common.ts";

const PAUSE_USAGE = [
  "jetway pause <route> [--reason TEXT] [--for DURATION] --config FILE",
  "       jetway pause [--json] --config FILE      (lists the paused routes)",
].join("\n");

/** The route a command names, which must be one of the config's. */
function routeNamed(config: Config, name: string | undefined): string {
  const known = config.routes.map((r) => r.name);
  if (name === undefined) throw new UsageError("missing <route>");
  if (!known.includes(name)) {
    throw new UsageError(`no route "${name}" in the config (routes: ${known.join(", ") || "none"})`);
  }
  return name;
}

function who(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return hostname();
  }
}

/** Opens the control bucket with the config's NATS settings, runs `use`, and closes the connection. */
async function withControl<T>(config: Config, use: (kv: KV) => Promise<T>) {
  const { nc } = await connectNats(config.nats);
  try {
    return await use(await openControl(nc, config.control));
  } finally {
    await nc.close();
  }
}

const out = (text: string) => process.stdout.write(`${text}\n`);

function describe(route: string, record: PauseRecord | string, now = Date.now()): string {
  if (typeof record === "string") return `${route}: unreadable pause record (${record})`;
  // A timed pause ends on each bridge by itself; its record stays until the next pause or resume.
  if (record.until && Date.parse(record.until) <= now) {
    return `${route}: not paused (a pause ended at ${record.until}): ${record.reason}`;
  }
  const until = record.until ? ` until ${record.until}` : "";
  const by = record.by ? ` by ${record.by}` : "";
  return `${route}: paused${until} (since ${record.at}${by}): ${record.reason}`;
}

/**
 * `jetway pause <route>`: every bridge replica stops sending that route's messages and holds what it has
 * (bounded by max_ack_pending); the rest waits in the stream. `--for` ends it by itself.
 */
export const command: Command = {
  usage: PAUSE_USAGE,
  async run(argv) {
    const { values, positionals } = parseFlags(
      argv,
      { ...CONFIG_OPTION, reason: { type: "string" }, for: { type: "string" }, json: { type: "boolean" } },
      true,
    );
    if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals.at(-1)}"`);
    const forMs = values.for === undefined ? undefined : parseDuration(values.for);
    if (values.for !== undefined && !forMs) {
      throw new UsageError(`--for must be a duration above zero, e.g. 30s, 10m, 2h; got "${values.for}"`);
    }
    const config = await configFrom(values.config);
    if (positionals.length === 0) {
      const pauses = await withControl(config, listPauses);
      if (values.json) out(JSON.stringify(Object.fromEntries(pauses)));
      else if (pauses.size === 0) out("no route is paused");
      else for (const [route, record] of pauses) out(describe(route, record));
      return 0;
    }
    const route = routeNamed(config, positionals[0]);
    const now = new Date();
    const record: PauseRecord = {
      reason: values.reason ?? "paused by an operator",
      at: now.toISOString(),
      by: who(),
      ...(forMs ? { until: new Date(now.getTime() + forMs).toISOString() } : {}),
    };
    await withControl(config, (kv) => kv.put(pauseKey(route), JSON.stringify(record)));
    out(describe(route, record));
    return 0;
  },
};

/** `jetway resume <route>`: every replica sends the route's messages again, what it held first. */
export const resumeCommand: Command = {
  usage: "jetway resume <route> --config FILE",
  async run(argv) {
    const { values, positionals } = parseFlags(argv, CONFIG_OPTION, true);
    if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals.at(-1)}"`);
    const config = await configFrom(values.config);
    const route = routeNamed(config, positionals[0]);
    const was = await withControl(config, async (kv) => {
      const entry = await kv.get(pauseKey(route));
      await kv.delete(pauseKey(route));
      return entry?.operation === "PUT";
    });
    out(was ? `${route}: resumed` : `${route}: was not paused`);
    return 0;
  },
};
