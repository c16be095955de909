import { readFile } from "node:fs/promises";
import { buildInvocation, EventFileError, readEventFile, send } from "../../infra/dev/invoke.ts";
import { DEV_SECRET } from "../../infra/dev/vars.ts";
import { type Command, parseFlags, UsageError } from "./common.ts";

/** `jetway invoke <function> <event.json>`: one delivery straight to a function, no NATS in between. */
export const command: Command = {
  usage:
    "jetway invoke <function> <event.json> [--url URL] [--subject S] [--secret S | --unsigned] [--id ID]\n" +
    "  the file is { subject, data } or the data alone (then --subject); default URL is the function's dev\n" +
    "  port (JETWAY_PORT_BASE respected) + /events; secret: --secret, else JETWAY_SECRET, else the dev secret",
  async run(argv) {
    const { values, positionals } = parseFlags(
      argv,
      {
        url: { type: "string" },
        subject: { type: "string" },
        secret: { type: "string" },
        unsigned: { type: "boolean", default: false },
        id: { type: "string" },
      },
      true,
    );
    const [fn, file, ...extra] = positionals;
    if (!fn || !file || extra.length > 0) throw new UsageError("expected <function> <event.json>");
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (cause) {
      throw new UsageError(`cannot read ${file}: ${(cause as Error).message}`, { cause });
    }
    const base = process.env.JETWAY_PORT_BASE;
    try {
      const invocation = await buildInvocation(fn, readEventFile(text, file), {
        url: values.url,
        subject: values.subject,
        secret: values.unsigned ? undefined : (values.secret ?? process.env.JETWAY_SECRET ?? DEV_SECRET),
        id: values.id,
        portBase: base ? Number(base) : undefined,
      });
      const result = await send(invocation);
      const retry = result.retryAfter ? ` (Retry-After: ${result.retryAfter})` : "";
      process.stdout.write(`POST ${invocation.url} → ${result.status}${retry}\n`);
      process.stdout.write(
        `${typeof result.body === "string" ? result.body : JSON.stringify(result.body, null, 2)}\n`,
      );
      return result.status >= 200 && result.status < 300 ? 0 : 1;
    } catch (error) {
      if (error instanceof EventFileError) throw new UsageError(error.message, { cause: error });
      throw error;
    }
  },
};
