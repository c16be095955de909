import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "pino";
import type { EventType } from "../../schemas/define.ts";
import {
  DeliveryError,
  describeIssues,
  metaFromHeaders,
  parseData,
  readBatchItem,
  strictUtf8,
} from "./cloudevent.ts";
import { BATCH_CONTENT_TYPE, HEADERS, verifySignature } from "./contract.ts";
import type { ErrorBody } from "./errors.ts";
import { childAt, createFunctionLogger, levelFrom, messageLogger } from "./logger.ts";
import { classifyError, retryAfterHeader } from "./outcome.ts";
import { readBody, readText } from "./request-body.ts";
import { type HeaderReader, headerReader } from "./request-headers.ts";
import { type BatchFailure, handlerContext, type Registration, type RunScope, runGroup } from "./run.ts";
import type { BatchHandler, EmittedEvent, Handler, InvokedEvent, Vars } from "./types.ts";
import { requestVars } from "./vars.ts";

export interface FunctionOptions {
  /** Bound to every log line as `fn`. */
  name: string;
  /**
   * The signing secret(s) a delivery may be signed with; default `env.JETWAY_SECRET` and, while the key is
   * rotated, `env.JETWAY_SECRET_PREVIOUS`. Undefined or empty → no check.
   */
  secret?: (env: Vars) => string | readonly string[] | undefined;
  /** Default: a pino logger writing JSON lines (see logger.ts). */
  logger?: Logger;
  /** Where bridge deliveries arrive. Default "/events". */
  path?: string;
}

/** Hono variables the SDK sets; user routes may read `c.var.log` too. */
export interface JetwayEnv {
  Variables: { log: Logger; vars: Vars };
}

async function readJson(c: Context): Promise<unknown> {
  let text: string;
  try {
    text = strictUtf8.decode(await readBody(c));
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    throw new DeliveryError(400, "bad_request", "body is not valid UTF-8", { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DeliveryError(400, "bad_request", `invalid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** `JETWAY_SECRET`, and `JETWAY_SECRET_PREVIOUS` beside it while the bridge may still sign with the old key. */
function deliverySecrets(vars: Vars): string | string[] | undefined {
  const { JETWAY_SECRET: current, JETWAY_SECRET_PREVIOUS: previous } = vars;
  if (!previous) return current;
  return current ? [current, previous] : [previous];
}

export class JetwayFunction {
  readonly name: string;
  readonly app: Hono<JetwayEnv>;
  readonly log: Logger;
  readonly #routes = new Map<string, Registration>();
  #warnedUnsigned = false;

  constructor(options: FunctionOptions) {
    this.name = options.name;
    this.log = options.logger ?? createFunctionLogger(options.name);
    this.app = new Hono<JetwayEnv>();
    const path = options.path ?? "/events";

    // 1. Signature over the raw body, before anything reads or trusts it.
    this.app.use(path, async (c, next) => {
      const vars = requestVars(c);
      c.set("vars", vars);
      c.set("log", this.log);
      const secret = options.secret ? options.secret(vars) : deliverySecrets(vars);
      if (secret?.length && c.req.method === "POST") {
        const header = headerReader(c);
        // Refused before a byte of the body is read: an unsigned request gets no memory of ours.
        if (!header(HEADERS.signature)) await verifySignature(secret, "", undefined);
        const body = await readBody(c);
        // A single delivery's id and type are headers: its signature must bind them too (v2).
        const identity = header("content-type")?.startsWith(BATCH_CONTENT_TYPE)
          ? undefined
          : { id: header(HEADERS.ceId) ?? "", type: header(HEADERS.ceType) ?? "" };
        await verifySignature(secret, body, header(HEADERS.signature) ?? undefined, { identity });
      } else if (!secret?.length && !this.#warnedUnsigned) {
        // Unsigned is fine for local dev, dangerous in production: say so once, loudly.
        this.#warnedUnsigned = true;
        this.log.warn("no JETWAY_SECRET configured: deliveries are accepted without a signature check");
      }
      await next();
    });
    // 2. Then the delivery itself: one binary-mode CloudEvent, or a batch of structured ones.
    this.app.post(path, (c) => {
      const header = headerReader(c);
      return header("content-type")?.startsWith(BATCH_CONTENT_TYPE)
        ? this.#batch(c)
        : this.#single(c, header);
    });
    this.app.onError((err, c) => {
      if (err instanceof HTTPException) return err.getResponse();
      const outcome = classifyError(err);
      const log = c.get("log") ?? this.log;
      if (outcome.internal) log.error({ err }, "request failed");
      else
        log.warn({ status: outcome.status, code: outcome.code, reason: outcome.message }, "request refused");
      if (outcome.retryAfterS !== undefined) c.header("Retry-After", retryAfterHeader(outcome.retryAfterS));
      const body: ErrorBody = { error: { code: outcome.code, message: outcome.message } };
      return c.json(body, outcome.status as 400);
    });
  }

  /** Handles one event type, one message per call. */
  handle<T extends EventType>(type: T, handler: Handler<T>): this {
    this.#registration(type).handle = handler as unknown as Handler<EventType>;
    return this;
  }

  /** Handles every message of one type in a batch delivery at once (e.g. in one DB transaction). */
  handleBatch<T extends EventType>(type: T, handler: BatchHandler<T>): this {
    this.#registration(type).batch = handler as unknown as BatchHandler<EventType>;
    return this;
  }

  /** Subjects this function handles: what a bridge route's filter should cover. */
  get subjects(): string[] {
    return [...this.#routes.keys()];
  }

  #registration(type: EventType): Registration {
    const existing = this.#routes.get(type.subject);
    if (existing && existing.type !== type) throw new Error(`two event types share subject ${type.subject}`);
    const reg = existing ?? { type };
    this.#routes.set(type.subject, reg);
    return reg;
  }

  #scope(c: Context<JetwayEnv>, log: Logger): RunScope {
    const vars = c.get("vars");
    return { log, level: levelFrom(vars.JETWAY_LOG_LEVEL), vars, c };
  }

  async #single(c: Context<JetwayEnv>, header: HeaderReader): Promise<Response> {
    const meta = metaFromHeaders(header);
    const scope = this.#scope(c, this.log);
    const log = messageLogger(this.log, meta, scope.level);
    c.set("log", log);
    const raw = await readJson(c);
    const reg = this.#routes.get(meta.subject);
    if (!reg) throw new DeliveryError(422, "no_handler", `no handler for ${meta.subject}`);
    const event: InvokedEvent = { ...meta, data: parseData(reg.type, raw), raw };
    const events: EmittedEvent[] = [];
    if (reg.handle) {
      await reg.handle(event, handlerContext(event, log, scope, events));
      return c.json({ events });
    }
    // Only a batch handler: run it on a batch of one and turn its verdict back into a status.
    const result = await runGroup(reg, [event], { ...scope, log });
    const failure = result.failures.get(event.id);
    if (failure) return this.#failureResponse(c, failure);
    return c.json({ events: result.events.get(event.id) ?? [] });
  }

  #failureResponse(c: Context, failure: BatchFailure): Response {
    if (failure.retry_after !== undefined) c.header("Retry-After", retryAfterHeader(failure.retry_after));
    const [status, code] = failure.dead_letter
      ? ([422, "invalid_event"] as const)
      : ([503, "retryable"] as const);
    const body: ErrorBody = { error: { code, message: failure.reason } };
    return c.json(body, status);
  }

  async #batch(c: Context<JetwayEnv>): Promise<Response> {
    const body = await readJson(c);
    if (!Array.isArray(body))
      throw new DeliveryError(400, "bad_request", "a batch body must be a JSON array");
    const log = childAt(this.log, { batch_size: body.length }, levelFrom(c.get("vars").JETWAY_LOG_LEVEL));
    c.set("log", log);
    const failures: BatchFailure[] = [];
    const groups = new Map<Registration, InvokedEvent[]>();
    const seen = new Set<string>();
    for (const [index, raw] of body.entries()) {
      const item = readBatchItem(raw, index);
      if (seen.has(item.meta.id)) {
        throw new DeliveryError(400, "bad_request", `batch holds id ${item.meta.id} twice`);
      }
      seen.add(item.meta.id);
      if (!item.ok) {
        failures.push({ id: item.id, reason: item.reason, dead_letter: true });
        continue;
      }
      const reg = this.#routes.get(item.meta.subject);
      if (!reg) {
        failures.push({ id: item.meta.id, reason: `no handler for ${item.meta.subject}`, dead_letter: true });
        continue;
      }
      const parsed = reg.type.schema.safeParse(item.data);
      if (!parsed.success) {
        failures.push({
          id: item.meta.id,
          reason: describeIssues(reg.type.subject, parsed.error),
          dead_letter: true,
        });
        continue;
      }
      const list = groups.get(reg) ?? [];
      list.push({ ...item.meta, data: parsed.data, raw: item.data });
      groups.set(reg, list);
    }
    if (failures.length > 0) log.warn({ failures }, "invalid events in batch");
    const events: Record<string, EmittedEvent[]> = {};
    for (const [reg, list] of groups) {
      const result = await runGroup(reg, list, this.#scope(c, log));
      failures.push(...result.failures.values());
      for (const [id, out] of result.events) events[id] = out;
    }
    return c.json({ failures, events });
  }
}

/** Starts a function: register handlers with `.handle` / `.handleBatch`, serve `.app` on any runtime. */
export function defineFunction(options: FunctionOptions): JetwayFunction {
  return new JetwayFunction(options);
}
