import { describe, expect, it } from "vitest";
import {
  backoffDelay,
  beyondMaxDeliver,
  decideOutcome,
  type InvocationResult,
  type Outcome,
  type OutcomeClock,
  type OutcomePolicy,
  parseRetryAfter,
} from "./outcome.ts";

const NOW = Date.parse("2026-01-01T00:00:00Z");
/** random() = 0.5 → no jitter, so delays in the table are exact. */
const clock: OutcomeClock = { now: () => NOW, random: () => 0.5 };
const policy: OutcomePolicy = {
  max_deliver: 5,
  backoff: [1_000, 5_000, 10_000],
  max_backoff: 60_000,
  status_outcomes: { "404": "dead_letter", "409": "ack", "503": "retry" },
};

type Row = [name: string, result: InvocationResult, delivery: number, expected: Outcome];
const event = { subject: "orders.created", data: { id: 1 } };

const rows: Row[] = [
  ["200 → ack", { status: 200 }, 1, { kind: "ack", events: [] }],
  ["204 → ack", { status: 204 }, 5, { kind: "ack", events: [] }],
  ["2xx with events", { status: 201, body: { events: [event] } }, 1, { kind: "ack", events: [event] }],
  [
    "events keep id and headers",
    { status: 200, body: { events: [{ ...event, id: "e1", headers: { a: "b" } }] } },
    1,
    { kind: "ack", events: [{ ...event, id: "e1", headers: { a: "b" } }] },
  ],
  [
    "malformed events → dead letter",
    { status: 200, body: { events: [{ data: 1 }] } },
    1,
    { kind: "dead_letter", reason: "invalid response: events[0].subject must be a concrete subject" },
  ],
  [
    "wildcard event subject → dead letter",
    { status: 200, body: { events: [{ subject: "a.>", data: 1 }] } },
    1,
    { kind: "dead_letter", reason: "invalid response: events[0].subject must be a concrete subject" },
  ],
  [
    "an event header NATS refuses → dead letter, not a retry that fails the same way",
    { status: 200, body: { events: [event, { ...event, headers: { "x-a:b": "v" } }] } },
    1,
    {
      kind: "dead_letter",
      reason: "invalid response: events[1].headers: 'header' ':' is not a valid character in a header name",
    },
  ],
  [
    "an event header value with a line break → dead letter",
    { status: 200, body: { events: [{ ...event, headers: { "x-a": "1\r\nx-b: 2" } }] } },
    1,
    {
      kind: "dead_letter",
      reason: "invalid response: events[0].headers: 'header' values cannot contain \\r or \\n",
    },
  ],
  [
    "an event to a reserved subject → dead letter (the bridge's NATS user may publish to its control buckets)",
    { status: 200, body: { events: [{ subject: "$KV.jetway-control.pause.payment", data: {} }] } },
    1,
    {
      kind: "dead_letter",
      reason:
        "invalid response: events[0].subject $KV.jetway-control.pause.payment is reserved ($…, _INBOX.…)",
    },
  ],
  [
    "events not an array",
    { status: 200, body: { events: {} } },
    1,
    { kind: "dead_letter", reason: "invalid response: events must be an array" },
  ],
  [
    "2xx JSON too large to read → dead letter, never an ack that drops events",
    { status: 200, truncated: true },
    1,
    { kind: "dead_letter", reason: "HTTP 200: JSON response too large to read its events" },
  ],
  [
    "2xx JSON object that does not parse → dead letter: its events are unknown",
    { status: 200, malformed: true },
    1,
    { kind: "dead_letter", reason: "invalid response (HTTP 200): JSON body does not parse" },
  ],
  [
    "5xx JSON that does not parse → retry as any 5xx does",
    { status: 500, malformed: true },
    1,
    { kind: "retry", delayMs: 1_000, reason: "HTTP 500" },
  ],
  ["400 → dead letter", { status: 400 }, 1, { kind: "dead_letter", reason: "HTTP 400" }],
  ["410 → dead letter", { status: 410 }, 1, { kind: "dead_letter", reason: "HTTP 410" }],
  ["413 → dead letter", { status: 413 }, 1, { kind: "dead_letter", reason: "HTTP 413" }],
  ["415 → dead letter", { status: 415 }, 1, { kind: "dead_letter", reason: "HTTP 415" }],
  [
    "422 with error detail",
    { status: 422, body: { error: "amount: expected number" } },
    1,
    { kind: "dead_letter", reason: "HTTP 422: amount: expected number" },
  ],
  [
    "422 with the SDK's nested error",
    { status: 422, body: { error: { code: "invalid_event", message: "amount_minor: expected int" } } },
    1,
    { kind: "dead_letter", reason: "HTTP 422: amount_minor: expected int" },
  ],
  ["401 → retry", { status: 401 }, 1, { kind: "retry", delayMs: 1_000, reason: "HTTP 401" }],
  ["403 → retry", { status: 403 }, 2, { kind: "retry", delayMs: 5_000, reason: "HTTP 403" }],
  ["429 → retry", { status: 429 }, 3, { kind: "retry", delayMs: 10_000, reason: "HTTP 429" }],
  [
    "500 → retry, last backoff repeats",
    { status: 500 },
    4,
    { kind: "retry", delayMs: 10_000, reason: "HTTP 500" },
  ],
  ["302 → retry", { status: 302 }, 1, { kind: "retry", delayMs: 1_000, reason: "HTTP 302" }],
  [
    "timeout → retry",
    { error: "timeout", errorMessage: "no headers within 10000ms" },
    1,
    { kind: "retry", delayMs: 1_000, reason: "timeout: no headers within 10000ms" },
  ],
  [
    "refused → retry",
    { error: "refused" },
    1,
    { kind: "retry", delayMs: 1_000, reason: "connection refused" },
  ],
  ["reset → retry", { error: "reset" }, 1, { kind: "retry", delayMs: 1_000, reason: "connection reset" }],
  ["other → retry", { error: "other" }, 1, { kind: "retry", delayMs: 1_000, reason: "request failed" }],
  [
    "Retry-After seconds",
    { status: 503, retryAfter: "7" },
    1,
    { kind: "retry", delayMs: 7_000, reason: "HTTP 503 (status_outcomes: retry)" },
  ],
  [
    "Retry-After HTTP date",
    { status: 429, retryAfter: new Date(NOW + 30_000).toUTCString() },
    1,
    { kind: "retry", delayMs: 30_000, reason: "HTTP 429" },
  ],
  [
    "Retry-After capped at max_backoff",
    { status: 429, retryAfter: "3600" },
    1,
    { kind: "retry", delayMs: 60_000, reason: "HTTP 429" },
  ],
  [
    "Retry-After 0 → 1ms",
    { status: 429, retryAfter: "0" },
    1,
    { kind: "retry", delayMs: 1, reason: "HTTP 429" },
  ],
  [
    "unparseable Retry-After → backoff",
    { status: 429, retryAfter: "soon" },
    1,
    { kind: "retry", delayMs: 1_000, reason: "HTTP 429" },
  ],
  [
    "last attempt failing → dead letter",
    { status: 500, body: { error: "db down" } },
    5,
    { kind: "dead_letter", reason: "attempt 5 of 5 failed: HTTP 500: db down", exhausted: true },
  ],
  [
    "last attempt timing out → dead letter",
    { error: "timeout" },
    5,
    { kind: "dead_letter", reason: "attempt 5 of 5 failed: timeout", exhausted: true },
  ],
  ["Dapr SUCCESS on 500 → ack", { status: 500, body: { status: "SUCCESS" } }, 1, { kind: "ack", events: [] }],
  [
    "Dapr RETRY on 200 → retry",
    { status: 200, body: { status: "RETRY" } },
    1,
    { kind: "retry", delayMs: 1_000, reason: "function answered status RETRY (HTTP 200)" },
  ],
  [
    "Dapr DROP on 200 → dead letter",
    { status: 200, body: { status: "drop", reason: "duplicate order" } },
    1,
    { kind: "dead_letter", reason: "function answered status DROP (HTTP 200): duplicate order" },
  ],
  [
    "Dapr status beats status_outcomes",
    { status: 404, body: { status: "RETRY" } },
    1,
    { kind: "retry", delayMs: 1_000, reason: "function answered status RETRY (HTTP 404)" },
  ],
  ["unknown Dapr status is ignored", { status: 200, body: { status: "ok" } }, 1, { kind: "ack", events: [] }],
  [
    "status_outcomes 404 → dead letter",
    { status: 404 },
    1,
    { kind: "dead_letter", reason: "HTTP 404 (status_outcomes: dead_letter)" },
  ],
  ["status_outcomes 409 → ack", { status: 409 }, 1, { kind: "ack", events: [] }],
];

describe("decideOutcome", () => {
  it.each(rows)("%s", (_name, result, delivery, expected) => {
    expect(decideOutcome(result, delivery, policy, clock)).toEqual(expected);
  });

  it("jitters the backoff within ±20% and never past max_backoff", () => {
    const low = backoffDelay(1, policy, { now: () => NOW, random: () => 0 });
    const high = backoffDelay(1, policy, { now: () => NOW, random: () => 0.999_999 });
    expect(low).toBe(800);
    expect(high).toBe(1_200);
    const capped = backoffDelay(3, { ...policy, max_backoff: 2_000 }, { now: () => NOW, random: () => 1 });
    expect(capped).toBe(2_000);
  });

  it("never returns a retry delay below 1ms", () => {
    const tiny: OutcomePolicy = { ...policy, backoff: [0] };
    expect(decideOutcome({ status: 500 }, 1, tiny, clock)).toEqual({
      kind: "retry",
      delayMs: 1,
      reason: "HTTP 500",
    });
  });
});

describe("beyondMaxDeliver", () => {
  it("dead-letters only deliveries past max_deliver, saying why", () => {
    expect(beyondMaxDeliver(5, policy)).toBeUndefined();
    const outcome = beyondMaxDeliver(6, policy);
    expect(outcome?.kind).toBe("dead_letter");
    expect(outcome?.kind === "dead_letter" && outcome.reason).toMatch(/delivery 6 exceeds max_deliver 5/);
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and dates, ignores junk", () => {
    expect(parseRetryAfter("2", NOW)).toBe(2_000);
    expect(parseRetryAfter(new Date(NOW - 5_000).toUTCString(), NOW)).toBe(0);
    expect(parseRetryAfter(undefined, NOW)).toBeUndefined();
    expect(parseRetryAfter("-1", NOW)).toBeUndefined();
  });
});
