import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import {
  type DeadLetter,
  drop,
  listDeadLetters,
  type RedriveSelection,
  redrive,
  showDeadLetter,
} from "../dlq.ts";
import { connectNats } from "../nats.ts";
import { CONFIG_OPTION, type Command, configFrom, parseFlags, UsageError } from "./common.ts";

const USAGE = [
  "jetway dlq list [--route R] [--limit N] [--json] --config FILE",
  "       jetway dlq show <seq> [--json] --config FILE",
  "       jetway dlq redrive (--route R | --seq A[-B]) [--dry-run] [--json] --config FILE",
  "       jetway dlq drop (--route R | --seq A[-B]) [--dry-run] [--json] --config FILE",
].join("\n");

const ACTIONS = new Set(["list", "show", "redrive", "drop"]);

const OPTIONS = {
  ...CONFIG_OPTION,
  route: { type: "string" },
  limit: { type: "string" },
  seq: { type: "string" },
  "dry-run": { type: "boolean" },
  json: { type: "boolean" },
} as const;

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`${flag} must be a positive integer, got "${value}"`);
  return n;
}

function seqRange(value: string): { from: number; to: number } {
  const [a, b] = value.split("-", 2);
  const from = positiveInt(a ?? "", "--seq");
  const to = b === undefined ? from : positiveInt(b, "--seq");
  if (to < from) throw new UsageError(`--seq range ${value} is backwards`);
  return { from, to };
}

/** A plain aligned table for people; --json is for machines. */
export function table(rows: DeadLetter[]): string {
  const head = ["SEQ", "ROUTE", "SUBJECT", "STATUS", "DELIVERIES", "DEAD-LETTERED", "REASON"];
  const body = rows.map((r) => [
    String(r.seq),
    r.route,
    r.subject,
    r.status || "-",
    r.deliveries || "-",
    r.deadLetteredAt || "-",
    r.reason.length > 60 ? `${r.reason.slice(0, 57)}...` : r.reason,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(head), ...body.map(line)].join("\n");
}

/** `jetway dlq list|show|redrive|drop`: inspect, replay or give up on dead letters. */
export const command: Command = {
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, OPTIONS, true);
    const [action, ...args] = positionals;
    if (!action || !ACTIONS.has(action)) {
      throw new UsageError(action ? `unknown dlq action "${action}"` : "missing dlq action");
    }
    let selection: RedriveSelection | undefined;
    if (action === "redrive" || action === "drop") {
      if (values.route && values.seq) throw new UsageError("use either --route or --seq, not both");
      if (values.route) selection = { route: values.route };
      else if (values.seq) selection = seqRange(values.seq);
      else throw new UsageError(`${action} needs --route R or --seq A[-B]`);
    }
    const seq = action === "show" ? positiveInt(args[0] ?? "", "<seq>") : undefined;
    if (args.length > (action === "show" ? 1 : 0))
      throw new UsageError(`unexpected argument "${args.at(-1)}"`);
    const config = await configFrom(values.config);
    const out = (text: string) => process.stdout.write(`${text}\n`);

    const { nc } = await connectNats(config.nats);
    try {
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      const dl = config.dead_letter;
      if (action === "list") {
        const limit = values.limit ? positiveInt(values.limit, "--limit") : undefined;
        const rows = await listDeadLetters(js, jsm, dl, { route: values.route, limit });
        out(values.json ? JSON.stringify(rows) : rows.length ? table(rows) : "no dead letters");
        return 0;
      }
      if (seq !== undefined) {
        const letter = await showDeadLetter(jsm, dl, seq);
        out(JSON.stringify(letter, null, values.json ? undefined : 2));
        return 0;
      }
      if (!selection) return 2;
      const dryRun = values["dry-run"] ?? false;
      if (action === "drop") {
        const dropped = await drop(js, jsm, dl, selection, { dryRun });
        if (values.json) out(JSON.stringify(dropped));
        else {
          const verb = dryRun ? "would drop" : "dropped";
          for (const r of dropped) {
            const what = `${r.route} ${r.subject}: ${r.reason}`;
            out(r.error ? `seq ${r.seq}: FAILED ${r.error}` : `seq ${r.seq}: ${verb} (${what})`);
          }
          out(
            `${dropped.filter((r) => !r.error).length} of ${dropped.length} ${dryRun ? "selected" : "dropped"}`,
          );
        }
        return dropped.some((r) => r.error) ? 1 : 0;
      }
      const results = await redrive(js, jsm, dl, selection, { dryRun });
      if (values.json) out(JSON.stringify(results));
      else {
        const verb = dryRun ? "would redrive" : "redrove";
        for (const r of results) {
          out(r.error ? `seq ${r.seq}: FAILED ${r.error}` : `seq ${r.seq}: ${verb} to ${r.subject}`);
        }
        out(
          `${results.filter((r) => !r.error).length} of ${results.length} ${verb === "redrove" ? "redriven" : "selected"}`,
        );
      }
      return results.some((r) => r.error) ? 1 : 0;
    } finally {
      await nc.close();
    }
  },
};
