import { headers as natsHeaders } from "@nats-io/nats-core";
import type { RouteConfig } from "./config.ts";
import { isReservedSubject } from "./subjects.ts";

/**
 * The decision "function response → ack | retry(delay) | dead-letter(reason)", as a pure function.
 * The consumer only executes what this returns; the table lives in outcome.test.ts.
 */

export type TransportErrorKind = "timeout" | "refused" | "reset" | "other";

/** What came back from one invocation: an HTTP status, or a transport error. */
export interface InvocationResult {
  status?: number | undefined;
  error?: TransportErrorKind | undefined;
  errorMessage?: string | undefined;
  /** The parsed JSON body, when the response had one. */
  body?: unknown;
  /** The raw Retry-After header. */
  retryAfter?: string | undefined;
  /** A JSON body too large to read whole: any events in it are unknown. */
  truncated?: boolean | undefined;
  /** A JSON object body that does not parse (cut short, badly serialised): any events in it are unknown. */
  malformed?: boolean | undefined;
}

/** An event a function asked the bridge to publish (in its 2xx JSON body). */
export interface EmittedEvent {
  subject: string;
  data: unknown;
  id?: string | undefined;
  headers?: Record<string, string> | undefined;
}

export type Outcome =
  | { kind: "ack"; events: EmittedEvent[] }
  | { kind: "retry"; delayMs: number; reason: string }
  /** `exhausted`: a retryable failure on the last allowed attempt, not a message refused as bad. */
  | { kind: "dead_letter"; reason: string; exhausted?: true };

/** The delay a retry outcome asks for; 0 for any other. */
export const retryDelay = (outcome: Outcome): number => (outcome.kind === "retry" ? outcome.delayMs : 0);

/** A failure a retry could fix: what the circuit breaker counts (and holds while open). */
export const retryableFailure = (outcome: Outcome): outcome is Exclude<Outcome, { kind: "ack" }> =>
  outcome.kind === "retry" || (outcome.kind === "dead_letter" && outcome.exhausted === true);

export type OutcomePolicy = Pick<RouteConfig, "max_deliver" | "backoff" | "max_backoff" | "status_outcomes">;

/** Time and randomness, injectable so the function stays pure under test. */
export interface OutcomeClock {
  now(): number;
  random(): number;
}
const SYSTEM_CLOCK: OutcomeClock = { now: Date.now, random: Math.random };

/** Statuses that say "this message will never succeed": retrying cannot help. */
const BAD_MESSAGE = new Set([400, 410, 413, 415, 422]);
const JITTER = 0.2;
const NO_EVENTS: EmittedEvent[] = [];

const TRANSPORT_REASON: Record<TransportErrorKind, string> = {
  timeout: "timeout",
  refused: "connection refused",
  reset: "connection reset",
  other: "request failed",
};

/** Delay before retry number `delivery` from route.backoff (last entry repeats), ±20% jitter, capped. */
export function backoffDelay(delivery: number, policy: OutcomePolicy, clock = SYSTEM_CLOCK): number {
  const { backoff } = policy;
  const base = backoff[Math.min(Math.max(delivery, 1), backoff.length) - 1] ?? 1_000;
  const jittered = base * (1 - JITTER + 2 * JITTER * clock.random());
  return Math.max(1, Math.round(Math.min(jittered, policy.max_backoff)));
}

/** Retry-After as seconds or an HTTP date; undefined when absent or unparseable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1_000;
  // HTTP dates name a month; a bare "-1" would otherwise parse as the year -1.
  const at = /[a-z]/i.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** A message whose delivery count is past max_deliver: its last attempt never settled (e.g. a crash). */
export function beyondMaxDeliver(delivery: number, policy: OutcomePolicy): Outcome | undefined {
  if (delivery <= policy.max_deliver) return undefined;
  return {
    kind: "dead_letter",
    reason: `delivery ${delivery} exceeds max_deliver ${policy.max_deliver}: an earlier attempt ended without a decision`,
  };
}

/** `body[key]` when body is an object, else undefined. */
export function field(body: unknown, key: string): unknown {
  return body !== null && typeof body === "object" ? (body as Record<string, unknown>)[key] : undefined;
}

/** A short explanation a function gave in its JSON body (error / reason / message). */
function detail(body: unknown): string {
  for (const key of ["error", "reason", "message"]) {
    const value = field(body, key);
    if (typeof value === "string" && value.length > 0) return `: ${value.slice(0, 200)}`;
  }
  // The SDK's (and many APIs') error shape: { error: { code, message } }.
  const nested = field(field(body, "error"), "message");
  if (typeof nested === "string" && nested.length > 0) return `: ${nested.slice(0, 200)}`;
  return "";
}

/** Validates `events` of a 2xx body; returns an error text instead of throwing. */
function readEvents(body: unknown): EmittedEvent[] | string {
  return readEventList(field(body, "events"));
}

/**
 * Why NATS would refuse these headers (a name with ':' or outside printable ASCII, a value with a line
 * break), checked by NATS's own header builder so an event is refused here, not at publish time.
 */
function refusedHeader(headers: Record<string, string>): string | undefined {
  try {
    const h = natsHeaders();
    for (const [name, value] of Object.entries(headers)) {
      if (name.length === 0) return "a header name must not be empty";
      h.set(name, value);
    }
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Validates a list of emitted events (a single body's `events`, or one id's list in a batch answer). */
export function readEventList(events: unknown): EmittedEvent[] | string {
  if (events === undefined || events === null) return NO_EVENTS;
  if (!Array.isArray(events)) return "events must be an array";
  for (let i = 0; i < events.length; i++) {
    const event: unknown = events[i];
    const subject = field(event, "subject");
    if (typeof subject !== "string" || !/^[^\s*>]+$/.test(subject)) {
      return `events[${i}].subject must be a concrete subject`;
    }
    if (isReservedSubject(subject)) return `events[${i}].subject ${subject} is reserved ($…, _INBOX.…)`;
    const id = field(event, "id");
    if (id !== undefined && (typeof id !== "string" || id.length === 0)) {
      return `events[${i}].id must be a non-empty string`;
    }
    const headers = field(event, "headers");
    if (headers !== undefined) {
      if (headers === null || typeof headers !== "object" || Array.isArray(headers)) {
        return `events[${i}].headers must be an object`;
      }
      if (!Object.values(headers).every((v) => typeof v === "string")) {
        return `events[${i}].headers values must be strings`;
      }
      const refused = refusedHeader(headers as Record<string, string>);
      if (refused) return `events[${i}].headers: ${refused}`;
    }
  }
  return events as EmittedEvent[];
}

type Verdict = "ack" | "retry" | "dead_letter";

function verdictOf(result: InvocationResult, policy: OutcomePolicy): { verdict: Verdict; why: string } {
  if (result.status === undefined) {
    const kind = result.error ?? "other";
    const message = result.errorMessage ? `: ${result.errorMessage}` : "";
    return { verdict: "retry", why: `${TRANSPORT_REASON[kind]}${message}` };
  }
  const { status, body } = result;
  const dapr = field(body, "status");
  if (typeof dapr === "string") {
    const upper = dapr.toUpperCase();
    const why = `function answered status ${upper} (HTTP ${status})${detail(body)}`;
    if (upper === "SUCCESS") return { verdict: "ack", why };
    if (upper === "RETRY") return { verdict: "retry", why };
    if (upper === "DROP") return { verdict: "dead_letter", why };
  }
  const override = policy.status_outcomes[String(status)];
  if (override)
    return { verdict: override, why: `HTTP ${status} (status_outcomes: ${override})${detail(body)}` };
  const why = `HTTP ${status}${detail(body)}`;
  if (status >= 200 && status < 300) return { verdict: "ack", why };
  if (BAD_MESSAGE.has(status)) return { verdict: "dead_letter", why };
  return { verdict: "retry", why };
}

/** Decides what to do with a message after one invocation; `delivery` is 1 on the first attempt. */
export function decideOutcome(
  result: InvocationResult,
  delivery: number,
  policy: OutcomePolicy,
  clock: OutcomeClock = SYSTEM_CLOCK,
): Outcome {
  const { verdict, why } = verdictOf(result, policy);
  if (verdict === "ack") {
    if (result.truncated) {
      return { kind: "dead_letter", reason: `${why}: JSON response too large to read its events` };
    }
    if (result.malformed) {
      return { kind: "dead_letter", reason: `invalid response (${why}): JSON body does not parse` };
    }
    const events = readEvents(result.body);
    if (typeof events === "string") return { kind: "dead_letter", reason: `invalid response: ${events}` };
    return { kind: "ack", events };
  }
  if (verdict === "dead_letter") return { kind: "dead_letter", reason: why };
  return failedAttempt(why, delivery, parseRetryAfter(result.retryAfter, clock.now()), policy, clock);
}

/**
 * A retryable failure of attempt `delivery`: retried after `askedMs` (capped by max_backoff) or the route's
 * backoff, or dead-lettered when it was the last allowed attempt.
 */
export function failedAttempt(
  why: string,
  delivery: number,
  askedMs: number | undefined,
  policy: OutcomePolicy,
  clock: OutcomeClock = SYSTEM_CLOCK,
): Outcome {
  if (delivery >= policy.max_deliver) {
    const reason = `attempt ${delivery} of ${policy.max_deliver} failed: ${why}`;
    return { kind: "dead_letter", reason, exhausted: true };
  }
  const delayMs =
    askedMs === undefined
      ? backoffDelay(delivery, policy, clock)
      : Math.max(1, Math.round(Math.min(askedMs, policy.max_backoff)));
  return { kind: "retry", delayMs, reason: why };
}
