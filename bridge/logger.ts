import pino from "pino";

/** Paths that may carry secrets anywhere in a logged object; pino replaces them with [redacted]. */
export const REDACT_PATHS = [
  "pass",
  "password",
  "token",
  "secret",
  "publish_token",
  "authorization",
  "creds_file",
  "*.pass",
  "*.password",
  "*.token",
  "*.secret",
  "*.publish_token",
  "*.authorization",
  "*.Authorization",
  "*.creds_file",
  "config.nats.pass",
  "config.nats.token",
  "config.http.publish_token",
  "config.routes[*].secret",
  "headers.authorization",
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
  return destination ? pino(options, destination) : pino(options);
}
