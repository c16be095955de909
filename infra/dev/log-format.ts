/*
 * Turns the JSON log lines of the functions (pino, tagged with `fn`) and of the bridge into one readable
 * line each: `12:00:01 [payment]   INFO  payment settled order_id=ord_1 status=succeeded`.
 */

export interface LogLine {
  /** Who wrote it: the line's `fn`, else the process's default tag (e.g. "bridge"). */
  tag: string;
  /** The parsed record, or undefined for a line that is not JSON (printed as is). */
  record: Record<string, unknown> | undefined;
  raw: string;
}

const LEVEL_NAMES: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};
const LEVEL_COLOURS: Record<string, number> = { WARN: 33, ERROR: 31, FATAL: 31, DEBUG: 90, TRACE: 90 };
const TAG_COLOURS = [36, 35, 32, 34, 33, 96, 95, 92];
/** Fields every line has; printing them again adds nothing. */
const HIDDEN = new Set(["level", "time", "pid", "hostname", "msg", "fn", "service", "v"]);

/** Reads one line; `fn` in the record wins over the default tag unless `forceTag` (the bridge process). */
export function parseLine(raw: string, defaultTag: string, forceTag = false): LogLine {
  let record: Record<string, unknown> | undefined;
  if (raw.startsWith("{")) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed))
        record = parsed as Record<string, unknown>;
    } catch {
      record = undefined;
    }
  }
  const fn = record?.fn;
  const tag = !forceTag && typeof fn === "string" && fn ? fn : defaultTag;
  return { tag, record, raw };
}

function paint(text: string, code: number | undefined, colour: boolean): string {
  return colour && code !== undefined ? `\u001b[${code}m${text}\u001b[0m` : text;
}

function fieldValue(value: unknown): string {
  if (typeof value === "string") return /[\s"=]/.test(value) || value === "" ? JSON.stringify(value) : value;
  if (value && typeof value === "object") {
    // Errors come serialised by pino as { type, message, stack }: the message is what a reader needs.
    const err = value as { type?: unknown; message?: unknown };
    if (typeof err.message === "string")
      return JSON.stringify(`${String(err.type ?? "Error")}: ${err.message}`);
    return JSON.stringify(value);
  }
  return String(value);
}

function clock(time: unknown): string {
  const date = typeof time === "string" || typeof time === "number" ? new Date(time) : new Date();
  return Number.isNaN(date.getTime()) ? "--:--:--" : date.toISOString().slice(11, 19);
}

export interface FormatOptions {
  colour: boolean;
  /** Pads tags to this width so messages line up. */
  tagWidth?: number;
  tagColour?: (tag: string) => number | undefined;
}

/** A stable colour per tag, in order of first appearance. */
export function tagPalette(): (tag: string) => number | undefined {
  const assigned = new Map<string, number>();
  return (tag) => {
    let code = assigned.get(tag);
    if (code === undefined) {
      code = TAG_COLOURS[assigned.size % TAG_COLOURS.length];
      if (code !== undefined) assigned.set(tag, code);
    }
    return code;
  };
}

/** One human line for a parsed log line. */
export function formatLine(line: LogLine, options: FormatOptions): string {
  const tag = paint(
    `[${line.tag}]`.padEnd((options.tagWidth ?? 0) + 2),
    options.tagColour?.(line.tag),
    options.colour,
  );
  const { record } = line;
  if (!record) return `${clock(undefined)} ${tag} ${line.raw}`;
  const level =
    typeof record.level === "number"
      ? (LEVEL_NAMES[record.level] ?? "INFO")
      : String(record.level ?? "INFO").toUpperCase();
  const fields = Object.entries(record)
    .filter(([key, value]) => !HIDDEN.has(key) && value !== undefined && value !== "")
    .map(([key, value]) => `${key}=${fieldValue(value)}`)
    .join(" ");
  const msg = typeof record.msg === "string" ? record.msg : "";
  const text = [msg, paint(fields, 90, options.colour)].filter(Boolean).join(" ");
  return `${clock(record.time)} ${tag} ${paint(level.padEnd(5), LEVEL_COLOURS[level], options.colour)} ${text}`;
}
