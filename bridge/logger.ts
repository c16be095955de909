import { writeSync } from "node:fs";
import pino from "pino";
import { isoTimeCache } from "./iso-time.ts";

/**
 * Where secrets can appear in a logged object; pino replaces them with [redacted]. Only anchored paths:
 * a leading wildcard (`*.secret`) makes redaction walk every logged object, and cost ~10 µs on each
 * per-message line. Log secret-bearing objects under these keys (config, route, nats, http, headers).
 */
export const REDACT_PATHS = [
  "pass",
  "password",
  "token",
  "secret",
  "publish_token",
  "publish_secret",
  "authorization",
  "creds_file",
  "config.nats.pass",
  "config.nats.token",
  "config.nats.creds_file",
  "config.http.publish_token",
  "config.http.publish_secret",
  "config.routes[*].secret",
  "nats.pass",
  "nats.token",
  "nats.creds_file",
  "http.publish_token",
  "http.publish_secret",
  "route.secret",
  "routes[*].secret",
  "headers.authorization",
  "headers.Authorization",
  'headers["x-jetway-signature"]',
  "req.headers.authorization",
];

export interface LoggerOptions {
  level?: string;
  /** Where log lines go; stdout when omitted (tests pass a stream to read them). */
  destination?: pino.DestinationStream;
}

let stdout: pino.DestinationStream | undefined;

/**
 * stdout, written once per event-loop turn: the lines of one turn (at info, one per ack) are joined and
 * written with a single write(2) when the turn ends (setImmediate), so a quiet bridge still logs at once.
 * Cheaper than handing lines to the libuv thread pool (an async write per line or few: a thread wake-up
 * and a completion each). The write is a plain writeSync; whatever it leaves (a partial write, EAGAIN,
 * EPIPE) goes to sonic-boom, which retries or gives up as pino's own stdout would. Whatever is still
 * held when the process exits is written then. One per process, shared by every logger.
 */
function stdoutPerTurn(): pino.DestinationStream {
  if (stdout) return stdout;
  const fd = 1;
  const boom = pino.destination({ dest: fd, sync: true, contentMode: "buffer" });
  let pending = "";
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0) return;
    const bytes = Buffer.from(pending);
    pending = "";
    let written = 0;
    try {
      written = writeSync(fd, bytes);
    } catch {
      // Left to sonic-boom below, which meets the same error and handles it.
    }
    if (written < bytes.length) boom.write(bytes.subarray(written) as unknown as string);
  };
  process.on("exit", flush);
  stdout = {
    write(line: string) {
      pending += line;
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
  return stdout;
}

const logTime = isoTimeCache();
/** pino's `isoTime`, without a Date per line. */
const isoTime = () => `,"time":"${logTime(Date.now())}"`;

/** The bridge's root logger: JSON lines, secrets redacted. Scope with logger.child({ route }) etc. */
export function createLogger({ level = "info", destination }: LoggerOptions = {}): pino.Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: "jetway-bridge" },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    timestamp: isoTime,
  };
  return pino(options, destination ?? stdoutPerTurn());
}
