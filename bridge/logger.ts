import pino from "pino";

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
  "authorization",
  "creds_file",
  "config.nats.pass",
  "config.nats.token",
  "config.nats.creds_file",
  "config.http.publish_token",
  "config.routes[*].secret",
  "nats.pass",
  "nats.token",
  "nats.creds_file",
  "http.publish_token",
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

/** The bridge's root logger: JSON lines, secrets redacted. Scope with logger.child({ route }) etc. */
export function createLogger({ level = "info", destination }: LoggerOptions = {}): pino.Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: "jetway-bridge" },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // stdout without a blocking write per line: sonic-boom coalesces lines written while a write is in
  // flight (no minimum length, so a quiet bridge still logs at once); pino flushes it on exit.
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false }));
}
