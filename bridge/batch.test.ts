import type { JsMsg } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { decideBatch, encodeBatch, readBatchAnswer } from "./batch.ts";
import type { OutcomeClock, OutcomePolicy } from "./outcome.ts";
import { deliveryOf } from "./settle.ts";

const NOW = Date.parse("2026-01-01T00:00:00Z");
/** random() = 0.5 → no jitter, so delays are exact. */
const clock: OutcomeClock = { now: () => NOW, random: () => 0.5 };
const policy: OutcomePolicy = {
  max_deliver: 3,
  backoff: [1_000, 5_000],
  max_backoff: 60_000,
  status_outcomes: {},
};
const batch = [
  { id: "a", delivery: 1 },
  { id: "b", delivery: 2 },
  { id: "c", delivery: 3 },
];
const event = (n: number) => ({ subject: "out.x", data: n });

describe("encodeBatch", () => {
  const route = { name: 'pay"ment', stream: "ORDERS", max_deliver: 5 };
  const stamp = Date.parse("2026-01-02T03:04:05.678Z");
  const message = (seq: number, data: string, h?: Record<string, string>): JsMsg => {
    const hdrs = h ? natsHeaders() : undefined;
    for (const [k, v] of Object.entries(h ?? {})) hdrs?.set(k, v);
    return {
      subject: "orders.created.v1",
      data: new TextEncoder().encode(data),
      headers: hdrs,
      info: { stream: "ORDERS", streamSequence: seq, deliveryCount: 2, timestampNanos: stamp * 1e6 },
    } as unknown as JsMsg;
  };

  it("writes structured CloudEvents that parse back to every attribute, escapes included", () => {
    const json = message(7, '{"n":12345678901234567890,"s":"é"}', {
      "Nats-Msg-Id": 'order "1" ✓',
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "k=v",
    });
    const notJson = message(8, "{oops");
    const body = encodeBatch(
      [json, notJson].map((msg) => ({ msg, d: deliveryOf(msg, route.name, 0) })),
      route,
    ).toString();
    // Spliced as published: a number beyond 2^53 keeps every digit.
    expect(body).toContain('"data":{"n":12345678901234567890,"s":"é"}}');
    const common = {
      specversion: "1.0",
      source: "jetway://ORDERS",
      type: "orders.created.v1",
      time: "2026-01-02T03:04:05.678Z",
      datacontenttype: "application/json",
      jetwayroute: 'pay"ment',
      jetwaystream: "ORDERS",
      jetwaydelivery: 2,
      jetwaymaxdeliver: 5,
    };
    const [first, second] = JSON.parse(body);
    expect(first).toEqual({
      ...common,
      id: 'order "1" ✓',
      jetwayseq: 7,
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "k=v",
      data: { n: first.data.n, s: "é" },
    });
    expect(second).toEqual({
      ...common,
      id: "ORDERS:8",
      jetwayseq: 8,
      data_base64: Buffer.from("{oops").toString("base64"),
    });
  });

  it("sends a payload declared JSON as data_base64 when it is not one JSON text in UTF-8, keeping the body valid", () => {
    const raw = (seq: number, bytes: number[]) => {
      const m = message(seq, "");
      return { ...m, data: Uint8Array.from(bytes) } as unknown as JsMsg;
    };
    const ascii = (text: string) => [...new TextEncoder().encode(text)];
    const payloads = [
      [0xef, 0xbb, 0xbf, ...ascii('{"bom":1}')], // a byte-order mark: TextDecoder would have dropped it
      [0x22, 0xc3, 0x28, 0x22], // invalid UTF-8 inside a string
      ascii("[1,2"),
      ascii("   "),
      ascii('{"ok":true}'),
    ];
    const messages = payloads.map((bytes, i) => raw(20 + i, bytes));
    const body = encodeBatch(
      messages.map((msg) => ({ msg, d: deliveryOf(msg, route.name, 0) })),
      route,
    );
    const events = JSON.parse(body.toString()) as { data?: unknown; data_base64?: string }[];
    for (const [i, bytes] of payloads.slice(0, 4).entries()) {
      expect(events[i]?.data).toBeUndefined();
      expect(Buffer.from(events[i]?.data_base64 ?? "", "base64")).toEqual(Buffer.from(bytes));
    }
    expect(events[4]?.data).toEqual({ ok: true });
  });
});

describe("encodeBatch sizes", () => {
  it("fills its buffer exactly, from no message to many with multi-byte text", () => {
    const route = { name: "r", stream: "S", max_deliver: 1 };
    const msg = (i: number) =>
      ({
        subject: `s.${i}`,
        data: new TextEncoder().encode(i % 2 ? `{"v":"ü${i}"}` : "\u00ff binary"),
        headers: undefined,
        info: { stream: "S", streamSequence: i, deliveryCount: 1, timestampNanos: 0 },
      }) as unknown as JsMsg;
    for (const n of [0, 1, 2, 7]) {
      const messages = Array.from({ length: n }, (_, i) => msg(i + 1)).map((m) => ({
        msg: m,
        d: { ...deliveryOf(m, "r", 0), id: `ünï-${m.info.streamSequence}` },
      }));
      const parsed = JSON.parse(encodeBatch(messages, route).toString());
      expect(parsed.map((e: { id: string }) => e.id)).toEqual(messages.map((m) => m.d.id));
    }
  });
});

describe("readBatchAnswer", () => {
  it.each([
    [undefined, "not a JSON object"],
    [[], "not a JSON object"],
    [{ events: {} }, "failures must be an array"],
    [{ failures: [], events: [] }, "events must be an object keyed by input id"],
    [{ failures: [{ reason: "x" }] }, "failures[0].id must be a non-empty string"],
    [{ failures: [{ id: "a", reason: 5 }] }, "failures[0].reason must be a string"],
    [
      { failures: [{ id: "a", retry_after: -1 }] },
      "failures[0].retry_after must be a number of seconds >= 0",
    ],
    [{ failures: [{ id: "a", dead_letter: "yes" }] }, "failures[0].dead_letter must be a boolean"],
  ])("rejects %j: %s", (body, error) => {
    expect(readBatchAnswer(body)).toBe(error);
  });

  it("reads failures by id and defaults a missing reason and events", () => {
    const answer = readBatchAnswer({ failures: [{ id: "a" }, { id: "b", reason: "r", dead_letter: true }] });
    expect(answer).toEqual({
      failures: new Map([
        ["a", { id: "a", reason: "failed in batch (no reason given)" }],
        ["b", { id: "b", reason: "r", dead_letter: true }],
      ]),
      events: {},
    });
  });
});

describe("decideBatch", () => {
  it("acks every message not failed, with its own events; applies each failure with its delivery count", () => {
    const body = {
      failures: [
        { id: "a", reason: "busy", retry_after: 2 },
        { id: "b", reason: "bad sku", dead_letter: true },
      ],
      events: { a: [event(0)], c: [event(1), event(2)] },
    };
    expect(decideBatch({ status: 200, body }, batch, policy, clock)).toEqual([
      { kind: "retry", delayMs: 2_000, reason: "busy" },
      { kind: "dead_letter", reason: "bad sku" },
      { kind: "ack", events: [event(1), event(2)] },
    ]);
  });

  it("retries a failure with the route backoff, and dead-letters it on the last attempt", () => {
    const body = { failures: batch.map((d) => ({ id: d.id, reason: "nope" })) };
    expect(decideBatch({ status: 200, body }, batch, policy, clock)).toEqual([
      { kind: "retry", delayMs: 1_000, reason: "nope" },
      { kind: "retry", delayMs: 5_000, reason: "nope" },
      { kind: "dead_letter", reason: "attempt 3 of 3 failed: nope", exhausted: true },
    ]);
  });

  it("caps retry_after at max_backoff", () => {
    const body = { failures: [{ id: "a", reason: "later", retry_after: 3_600 }] };
    expect(decideBatch({ status: 200, body }, batch.slice(0, 1), policy, clock)).toEqual([
      { kind: "retry", delayMs: 60_000, reason: "later" },
    ]);
  });

  it("dead-letters only the message whose events are invalid", () => {
    const body = { failures: [], events: { a: [{ data: 1 }], b: "nope" } };
    expect(decideBatch({ status: 200, body }, batch, policy, clock)).toEqual([
      { kind: "dead_letter", reason: "invalid response: events[0].subject must be a concrete subject" },
      { kind: "dead_letter", reason: "invalid response: events must be an array" },
      { kind: "ack", events: [] },
    ]);
  });

  it("never reads an inherited property as a message's events", () => {
    const ids = [{ id: "constructor", delivery: 1 }];
    expect(decideBatch({ status: 200, body: { failures: [] } }, ids, policy, clock)).toEqual([
      { kind: "ack", events: [] },
    ]);
  });

  it("treats a 2xx that is not the batch format as a failure of every message", () => {
    const why = "malformed batch response (HTTP 200): failures must be an array";
    expect(decideBatch({ status: 200, body: { events: {} } }, batch, policy, clock)).toEqual([
      { kind: "retry", delayMs: 1_000, reason: why },
      { kind: "retry", delayMs: 5_000, reason: why },
      { kind: "dead_letter", reason: `attempt 3 of 3 failed: ${why}`, exhausted: true },
    ]);
    const truncated = decideBatch({ status: 200, truncated: true }, batch.slice(0, 1), policy, clock);
    expect(truncated).toEqual([
      { kind: "retry", delayMs: 1_000, reason: "malformed batch response (HTTP 200): too large to read" },
    ]);
    const malformed = decideBatch({ status: 200, malformed: true }, batch.slice(0, 1), policy, clock);
    expect(malformed).toEqual([
      {
        kind: "retry",
        delayMs: 1_000,
        reason: "malformed batch response (HTTP 200): body is not valid JSON",
      },
    ]);
  });

  it("treats failures or events under an id the batch did not send as a malformed answer, never an ack", () => {
    const one = batch.slice(0, 1);
    const id = one[0]?.id as string;
    const cases: [unknown, string][] = [
      [{ failures: [{ id: `${id} ` }] }, `failures name "${id} ", not an id of this batch`],
      [
        { failures: [], events: { other: [{ subject: "x.y", data: 1 }] } },
        'events name "other", not an id of this batch',
      ],
    ];
    for (const [body, why] of cases) {
      expect(decideBatch({ status: 200, body }, one, policy, clock)).toEqual([
        { kind: "retry", delayMs: 1_000, reason: `malformed batch response (HTTP 200): ${why}` },
      ]);
    }
  });

  it("applies a non-2xx answer or a transport error to each message as a single delivery would", () => {
    expect(decideBatch({ status: 500 }, batch, policy, clock)).toEqual([
      { kind: "retry", delayMs: 1_000, reason: "HTTP 500" },
      { kind: "retry", delayMs: 5_000, reason: "HTTP 500" },
      { kind: "dead_letter", reason: "attempt 3 of 3 failed: HTTP 500", exhausted: true },
    ]);
    expect(decideBatch({ status: 503, retryAfter: "7" }, batch.slice(0, 1), policy, clock)).toEqual([
      { kind: "retry", delayMs: 7_000, reason: "HTTP 503" },
    ]);
    const body = { error: { code: "bad_request", message: "x" } };
    expect(decideBatch({ status: 400, body }, batch.slice(0, 2), policy, clock)).toEqual([
      { kind: "dead_letter", reason: "HTTP 400: x" },
      { kind: "dead_letter", reason: "HTTP 400: x" },
    ]);
    expect(
      decideBatch({ error: "timeout", errorMessage: "no response" }, batch.slice(1, 2), policy, clock),
    ).toEqual([{ kind: "retry", delayMs: 5_000, reason: "timeout: no response" }]);
  });
});
