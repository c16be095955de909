import { headers as natsHeaders } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { DLQ_HEADERS } from "./dead-letter-headers.ts";
import { redrive } from "./dlq.ts";
import { HttpFunction, waitFor } from "./testing/http-function.ts";
import { type RouteFixture, routeFixture, useHarness } from "./testing/route-fixture.ts";

const { h, cleanups } = useHarness();

/** A route whose function refuses every message with a long reason: its dead letters carry ~1.6 KB of headers. */
async function refusingRoute(): Promise<RouteFixture> {
  const fn = await HttpFunction.start(() => ({ status: 422, body: { error: "bad field ".repeat(150) } }));
  cleanups.push(() => fn.close());
  const f = await routeFixture(h, fn.url, { max_deliver: 2, backoff: ["20ms"] });
  cleanups.push(() => f.consumer.stop(1_000));
  await f.consumer.start();
  return f;
}

/** Publishes a message `short` bytes under max_payload, with a header the dead letter may leave out. */
async function nearlyFull(f: RouteFixture, short: number) {
  const max = h.nc.info?.max_payload ?? 1_048_576;
  const hdrs = natsHeaders();
  hdrs.set("X-Tenant", "acme");
  const data = new Uint8Array(max - short).fill(0x61);
  const { seq } = await h.js.publish(f.subject, data, { headers: hdrs });
  await waitFor("the dead letter", async () => (await f.dlq()).length === 1);
  await f.consumer.stop(1_000);
  return { data, seq };
}

const redriveAll = (f: RouteFixture) => redrive(h.js, h.jsm, f.config.dead_letter, { route: f.route.name });

describe("dead letters and redrive trust only the bridge", () => {
  it("a dead letter drops the original's own Jetway-Dlq-* headers", async () => {
    const f = await refusingRoute();
    const hdrs = natsHeaders();
    hdrs.set(DLQ_HEADERS.trimmed, "headers, payload");
    hdrs.set(DLQ_HEADERS.subject, "$KV.elsewhere");
    await h.js.publish(f.subject, "{}", { headers: hdrs });
    await waitFor("the dead letter", async () => (await f.dlq()).length === 1);
    const [letter] = await f.dlq();
    expect(letter?.header.get(DLQ_HEADERS.trimmed)).toBe("");
    expect(letter?.header.values(DLQ_HEADERS.subject)).toEqual([f.subject]);
  });

  it("redrive refuses a letter that names a reserved subject, and keeps it", async () => {
    const f = await refusingRoute();
    await f.consumer.stop(1_000);
    const hdrs = natsHeaders();
    hdrs.set(DLQ_HEADERS.route, f.route.name);
    hdrs.set(DLQ_HEADERS.subject, "$KV.jetway-control.pause.payment");
    await h.js.publish(`${f.config.dead_letter.subject_prefix}.${f.route.name}`, "{}", { headers: hdrs });
    const [result] = await redriveAll(f);
    expect(result?.error).toBe(
      "refusing to redrive to the reserved subject $KV.jetway-control.pause.payment",
    );
    expect(await f.dlq()).toHaveLength(1);
  });
});

describe("a dead letter too large to store whole", () => {
  it("leaves out the original's headers, and redrive reads them back from the original", async () => {
    const f = await refusingRoute();
    const { data } = await nearlyFull(f, 1_500);
    const [letter] = await f.dlq();
    expect(letter?.header.get(DLQ_HEADERS.trimmed)).toBe("headers");
    expect(letter?.header.get("X-Tenant")).toBe("");
    expect(letter?.header.get(DLQ_HEADERS.reason)).toMatch(/^HTTP 422: bad field/);
    expect(letter?.data.length).toBe(data.length);
    expect(f.outcomes.map((o) => `${o.delivery.delivery}:${o.outcome}`)).toEqual(["1:dead_letter"]);

    const [result] = await redriveAll(f);
    expect(result?.error).toBeUndefined();
    const again = await h.jsm.streams.getMessage(f.route.stream, { seq: result?.newSeq as number });
    expect(again?.header.get("X-Tenant")).toBe("acme");
    expect(again?.data).toEqual(data);
  });

  it("leaves out the payload too when even that does not fit, and redrive reads it back", async () => {
    const f = await refusingRoute();
    const { data, seq } = await nearlyFull(f, 100);
    const [letter] = await f.dlq();
    expect(letter?.header.get(DLQ_HEADERS.trimmed)).toBe("headers, payload");
    expect(letter?.data.length).toBe(0);
    expect(letter?.header.get(DLQ_HEADERS.seq)).toBe(String(seq));

    const [result] = await redriveAll(f);
    expect(result?.error).toBeUndefined();
    const again = await h.jsm.streams.getMessage(f.route.stream, { seq: result?.newSeq as number });
    expect(again?.data).toEqual(data);
    expect(again?.header.get("X-Tenant")).toBe("acme");
  });

  it("keeps a trimmed letter whose original is gone from its stream, saying so", async () => {
    const f = await refusingRoute();
    const { seq } = await nearlyFull(f, 100);
    await h.jsm.streams.deleteMessage(f.route.stream, seq);
    const [gone] = await redriveAll(f);
    expect(gone?.error).toMatch(/left out the original's headers, payload, and IN_\w+:\d+ is gone/);
    expect(await f.dlq()).toHaveLength(1);
  });
});
