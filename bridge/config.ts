import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { duration } from "./duration.ts";
import { rate } from "./rate-limit.ts";

/** A token that names a JetStream stream or consumer (no dots, spaces or wildcards). */
const name = z.string().regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only");
const subject = z
  .string()
  .min(1)
  .regex(/^[^\s]+$/, "no whitespace");

const tls = z
  .object({
    ca_file: z.string().optional(),
    cert_file: z.string().optional(),
    key_file: z.string().optional(),
    handshake_first: z.boolean().default(false),
  })
  .strict();

/**
 * TLS towards a route's function, beyond the system's trusted CAs: a private CA (`ca_file`, added to them)
 * for functions behind an internal HTTPS endpoint, and a client certificate for mutual TLS.
 */
const routeTls = z
  .object({
    ca_file: z.string().min(1).optional(),
    cert_file: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
    /** The name the function's certificate must carry, when the URL's host is not it (an IP address, say). */
    server_name: z.string().min(1).optional(),
  })
  .strict()
  .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), {
    message: "cert_file and key_file go together (a client certificate and its key)",
  });

const natsSchema = z
  .object({
    servers: z.array(z.string().min(1)).min(1).default(["nats://127.0.0.1:4222"]),
    name: z.string().default("jetway-bridge"),
    user: z.string().optional(),
    pass: z.string().optional(),
    token: z.string().optional(),
    creds_file: z.string().optional(),
    tls: tls.optional(),
    /** How long start-up waits for the first connection to a server to complete. */
    connect_timeout: duration.default(20_000),
    /**
     * How long start-up keeps retrying while no server listens yet or JetStream is still coming up (a
     * cluster electing its leader or placing replicas); a refusal of what was asked fails at once.
     */
    startup_wait: duration.default(60_000),
    /**
     * How often the client pings its server; `max_pings_out` unanswered pings mark the connection stale and
     * it moves to another server. A server that stops answering without closing its sockets (frozen, or cut
     * off by a partition) is only noticed this way: with nats.js's defaults (2 minutes, 2) after 4–6 minutes.
     */
    ping_interval: duration.default(10_000),
    max_pings_out: z.number().int().min(1).max(100).default(2),
  })
  .strict();

const streamSchema = z
  .object({
    name,
    subjects: z.array(subject).min(1),
    storage: z.enum(["file", "memory"]).default("file"),
    replicas: z.number().int().min(1).max(5).default(1),
    retention: z.enum(["limits", "interest", "workqueue"]).default("limits"),
    duplicate_window: duration.default(120_000),
    max_age: duration.optional(),
    max_bytes: z.number().int().positive().optional(),
    max_msg_size: z.number().int().positive().optional(),
  })
  .strict();

const batchSchema = z
  .object({
    size: z.number().int().min(1).max(10_000).default(100),
    max_wait: duration.default(5),
  })
  .strict();

const circuitSchema = z
  .object({
    /** Retryable failures in a row (a batch counts each message) that open the circuit. */
    failures: z.number().int().min(1).default(20),
    /** The first pause before a probe; each failed probe doubles it. */
    open_for: duration.default(5_000),
    /** The longest pause between probes. */
    max_open: duration.default(120_000),
  })
  .strict()
  .refine((c) => c.max_open >= c.open_for, {
    message: "max_open must not be shorter than open_for",
    path: ["max_open"],
  });

const routeSchema = z
  .object({
    name,
    stream: name,
    durable: name.optional(),
    filter_subject: subject.optional(),
    url: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }),
    tls: routeTls.optional(),
    concurrency: z.number().int().min(1).max(10_000).default(64),
    timeout: duration.default(10_000),
    ack_wait: duration.default(30_000),
    max_deliver: z.number().int().min(1).default(5),
    /** Retry delays by attempt; the last one repeats. Applied by the bridge via nak(delay). */
    backoff: z.array(duration).min(1).default([1_000, 5_000, 10_000]),
    /** Upper bound on any retry delay, including one asked for by Retry-After. */
    max_backoff: duration.default(300_000),
    /** Consumer's max_ack_pending; defaults to a little above concurrency so a backlog stays on the server. */
    max_ack_pending: z.number().int().min(1).optional(),
    deliver_policy: z.enum(["all", "new", "last"]).default("all"),
    secret: z.string().min(1).optional(),
    /**
     * Batch delivery: up to `size` messages (or what arrived within `max_wait` of the first) in one POST of
     * structured CloudEvents (functions/sdk/contract.ts). On such a route `concurrency` counts batches.
     */
    batch: batchSchema.optional(),
    /**
     * At most this many messages a second (or per the duration given) to the function, split between the
     * bridge replicas (presence.ts): "200/s", "1000/m", "5/10s". What arrives faster waits in the bridge,
     * kept alive (rate-limit.ts).
     */
    rate_limit: rate.optional(),
    /**
     * Pauses the route while its function is down (circuit.ts): held messages are probed one at a time
     * instead of spending their max_deliver on the outage. `false` switches it off.
     */
    circuit_breaker: z
      .union([z.literal(false), circuitSchema])
      .default({ failures: 20, open_for: 5_000, max_open: 120_000 }),
    /** Overrides of the default outcome table: HTTP status → what to do. */
    status_outcomes: z
      .record(z.string().regex(/^\d{3}$/), z.enum(["ack", "retry", "dead_letter"]))
      .default({}),
  })
  .strict();

export const configSchema = z
  .object({
    nats: natsSchema.default({
      servers: ["nats://127.0.0.1:4222"],
      name: "jetway-bridge",
      connect_timeout: 20_000,
      startup_wait: 60_000,
      ping_interval: 10_000,
      max_pings_out: 2,
    }),
    http: z
      .object({
        port: z.number().int().min(0).max(65_535).default(8080),
        host: z.string().default("0.0.0.0"),
        /** Bearer token required by POST /v1/publish when set. */
        publish_token: z.string().min(1).optional(),
        /**
         * HMAC key: POST /v1/publish… then needs an `x-jetway-signature` over path and body (ingress.ts).
         * A list accepts a signature under any of its keys, for rotating one.
         */
        publish_secret: z
          .union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
            error: "must be a key (a non-empty string) or a list of keys",
          })
          .optional(),
        max_body: z.number().int().positive().optional(),
        /** Serve HTTPS with this certificate and key instead of HTTP (every endpoint: ingress, health, metrics). */
        tls: z
          .object({ cert_file: z.string().min(1), key_file: z.string().min(1) })
          .strict()
          .optional(),
      })
      .strict()
      .default({ port: 8080, host: "0.0.0.0" }),
    streams: z.array(streamSchema).default([]),
    dead_letter: z
      .object({
        stream: name.default("DLQ"),
        subject_prefix: z
          .string()
          .regex(/^[A-Za-z0-9_.-]+$/)
          .default("dlq"),
        storage: z.enum(["file", "memory"]).default("file"),
        replicas: z.number().int().min(1).max(5).default(1),
        max_age: duration.optional(),
      })
      .strict()
      .default({ stream: "DLQ", subject_prefix: "dlq", storage: "file", replicas: 1 }),
    /** Where operator pauses live (control.ts): a key-value bucket every replica watches. */
    control: z
      .object({
        bucket: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, - and _ only")
          .default("jetway-control"),
        replicas: z.number().int().min(1).max(5).default(1),
        /** How often each route's key is read as well as watched: the most a missed change can wait. */
        poll_interval: duration.refine((ms) => ms >= 100, "at least 100ms").default(5_000),
      })
      .strict()
      .default({ bucket: "jetway-control", replicas: 1, poll_interval: 5_000 }),
    routes: z.array(routeSchema).default([]),
    shutdown: z
      .object({ grace_period: duration.default(10_000) })
      .strict()
      .default({ grace_period: 10_000 }),
    /** OpenTelemetry tracing; also switched on by OTEL_EXPORTER_OTLP_ENDPOINT (exporter set by OTEL_* env). */
    telemetry: z
      .object({
        enabled: z.boolean().default(false),
        service_name: z.string().min(1).default("jetway-bridge"),
      })
      .strict()
      .default({ enabled: false, service_name: "jetway-bridge" }),
    log: z
      .object({
        level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
        /**
         * The level of the line an acked message writes. Retries (warn) and dead letters (error) always
         * log; a line per success at info is ~13% of the bridge's CPU in single delivery and, at 10k msgs/s,
         * gigabytes of log an hour. Batch routes log one info line per batch either way.
         */
        acks: z.enum(["debug", "info"]).default("debug"),
      })
      .strict()
      .default({ level: "info", acks: "debug" }),
  })
  .strict()
  .superRefine((config, ctx) => {
    const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: "custom", path, message });
    /** The first of `items` with the same key, per key: a later one repeats it. */
    const firstWith = <T>(items: readonly T[], key: (item: T) => string) => {
      const first = new Map<string, T>();
      return items.map((item) => {
        const k = key(item);
        const earlier = first.get(k);
        if (earlier === undefined) first.set(k, item);
        return earlier;
      });
    };
    // Provisioned one after the other, a second stream of a name would replace the first's subjects.
    firstWith(config.streams, (s) => s.name).forEach((earlier, i) => {
      if (earlier) issue(["streams", i, "name"], `duplicate stream name "${earlier.name}"`);
    });
    const streams = new Set(config.streams.map((s) => s.name));
    const sameName = firstWith(config.routes, (r) => r.name);
    // Two routes on one durable would share its messages, each function getting part of them.
    const sameDurable = firstWith(config.routes, (r) => `${r.stream}\u0000${durableName(r)}`);
    config.routes.forEach((route, i) => {
      if (sameName[i]) issue(["routes", i, "name"], `duplicate route name "${route.name}"`);
      const holder = sameDurable[i];
      if (holder && !sameName[i]) {
        issue(
          ["routes", i, route.durable === undefined ? "name" : "durable"],
          `route "${holder.name}" already uses the durable "${durableName(route)}" on stream "${route.stream}"`,
        );
      }
      if (route.tls && !route.url.startsWith("https:")) {
        ctx.addIssue({
          code: "custom",
          path: ["routes", i, "tls"],
          message: "tls applies to an https:// url only",
        });
      }
      if (!streams.has(route.stream)) {
        ctx.addIssue({
          code: "custom",
          path: ["routes", i, "stream"],
          message: `stream "${route.stream}" is not declared under streams`,
        });
      }
    });
    if (streams.has(config.dead_letter.stream)) {
      ctx.addIssue({
        code: "custom",
        path: ["dead_letter", "stream"],
        message: "the dead-letter stream must not also be a source stream",
      });
    }
  });

export type Config = z.output<typeof configSchema>;
export type RouteConfig = Config["routes"][number];
export type StreamConfig = Config["streams"][number];
export type NatsConfig = Config["nats"];

/** A config file that does not validate; the message names each offending field. */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly issues: readonly string[];
  constructor(source: string, issues: readonly string[], options?: { cause?: unknown }) {
    super(`invalid config ${source}:\n  - ${issues.join("\n  - ")}`, options);
    this.issues = issues;
  }
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces ${VAR} and ${VAR:-default} in every string, so secrets and URLs come from the environment. */
function interpolate(value: unknown, env: NodeJS.ProcessEnv, path: string, missing: string[]): unknown {
  if (typeof value === "string") {
    return value.replace(ENV_REF, (_, key: string, fallback: string | undefined) => {
      // As in a shell: ${VAR:-default} also replaces a set-but-empty VAR.
      const found = fallback !== undefined && !env[key] ? fallback : env[key];
      if (found === undefined) missing.push(`${path || "(root)"}: environment variable ${key} is not set`);
      return found ?? "";
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, `${path}[${i}]`, missing));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolate(v, env, path ? `${path}.${k}` : k, missing)]),
    );
  }
  return value;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => {
    if (typeof key === "number") return `${out}[${key}]`;
    return out ? `${out}.${String(key)}` : String(key);
  }, "");
}

const deepest = (issues: readonly z.core.$ZodIssue[]) => Math.max(0, ...issues.map((i) => i.path.length));

/**
 * One line per problem, naming the field. A value that matches no option of a union (`circuit_breaker:
 * false | {…}`) is reported by the option it came closest to, so a bad field inside the object is named.
 */
function issueLines(issue: z.core.$ZodIssue, base: readonly PropertyKey[] = []): string[] {
  const path = [...base, ...issue.path];
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    const best = issue.errors.reduce((a, b) => (deepest(b) > deepest(a) ? b : a));
    if (deepest(best) > 0) return best.flatMap((i) => issueLines(i, path));
    const options = issue.errors.map((branch) =>
      branch.map((i) => i.message.replace(/^Invalid input: /, "")).join(", "),
    );
    return [`${formatPath(path) || "(root)"}: ${options.join(" or ")}`];
  }
  return [`${formatPath(path) || "(root)"}: ${issue.message}`];
}

/** Validates an already-parsed config object. Env overrides: NATS_URL, NATS_USER, NATS_PASS, NATS_TOKEN, NATS_CREDS. */
export function parseConfig(raw: unknown, source = "(inline)", env: NodeJS.ProcessEnv = process.env): Config {
  const missing: string[] = [];
  const expanded = interpolate(raw ?? {}, env, "", missing) as Record<string, unknown>;
  if (missing.length > 0) throw new ConfigError(source, missing);
  const nats = { ...((expanded.nats as Record<string, unknown> | undefined) ?? {}) };
  if (env.NATS_URL) nats.servers = env.NATS_URL.split(",").map((s) => s.trim());
  if (env.NATS_USER) nats.user = env.NATS_USER;
  if (env.NATS_PASS) nats.pass = env.NATS_PASS;
  if (env.NATS_TOKEN) nats.token = env.NATS_TOKEN;
  if (env.NATS_CREDS) nats.creds_file = env.NATS_CREDS;
  const result = configSchema.safeParse({ ...expanded, nats });
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.flatMap((issue) => issueLines(issue)),
    );
  }
  return result.data;
}

/** Reads a YAML or JSON config file (YAML is a superset of JSON) and validates it. */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new ConfigError(file, [`cannot read file: ${(cause as Error).message}`], { cause });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (cause) {
    // Where, not what: the parser's message quotes the offending line, which may hold a secret.
    const { code, linePos } = cause as { code?: string; linePos?: { line: number; col: number }[] };
    const at = linePos?.[0] ? ` at line ${linePos[0].line}, column ${linePos[0].col}` : "";
    throw new ConfigError(file, [`not valid YAML/JSON: ${code ?? "parse error"}${at}`], { cause });
  }
  return parseConfig(raw, file, env);
}

/** The durable consumer name of a route. */
export const durableName = (route: RouteConfig): string => route.durable ?? route.name;

/** Batches a batch route may have out by default: the bench's throughput stops growing between 8 and 16. */
const MAX_BATCHES_OUT = 16;

/**
 * The consumer's max_ack_pending: close to what the route can have in flight, so a backlog stays on the
 * server instead of piling up in bridge memory. A batch route gets two batches per slot (one in flight,
 * one filling) and one more slot's worth, up to MAX_BATCHES_OUT batches: fewer starve the slots while
 * acks travel back (4 batches of 100 ran at 0.7× the rate of 16 in the bench).
 */
export const maxAckPending = (route: RouteConfig): number => {
  if (route.max_ack_pending !== undefined) return route.max_ack_pending;
  if (!route.batch) return route.concurrency * 2;
  return route.batch.size * Math.min(2 * (route.concurrency + 1), MAX_BATCHES_OUT);
};
