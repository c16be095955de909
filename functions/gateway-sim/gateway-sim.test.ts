import { describe, expect, it } from "vitest";
import { createGatewayApp } from "./app.ts";
import { GatewayState } from "./state.ts";

const charge = (key: string, body: Record<string, unknown> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/json", "idempotency-key": key },
  body: JSON.stringify({ amount_minor: 1000, currency: "USD", token: "tok_visa", ...body }),
});

describe("gateway simulator", () => {
  it("returns the original charge for a repeated key and counts one charge", async () => {
    const app = createGatewayApp();
    const first = await app.request("/charges", charge("k1"));
    expect(first.status).toBe(201);
    const again = await app.request("/charges", charge("k1"));
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await again.json()).toEqual(await first.json());
    const stats = await (await app.request("/stats")).json();
    expect(stats).toMatchObject({ requests: 2, charges: 1, replays: 1, by_key_count: { k1: 1 } });
  });

  it("refuses a key reused with different parameters, and requests without a key", async () => {
    const app = createGatewayApp();
    await app.request("/charges", charge("k1"));
    expect((await app.request("/charges", charge("k1", { amount_minor: 999 }))).status).toBe(422);
    const noKey = await app.request("/charges", { method: "POST", body: "{}" });
    expect(noKey.status).toBe(400);
  });

  it("declines the magic tokens with a decline code, idempotently", async () => {
    const app = createGatewayApp();
    const res = await app.request("/charges", charge("k2", { token: "tok_decline" }));
    expect(res.status).toBe(402);
    expect(await res.json()).toMatchObject({ error: { code: "card_declined" } });
    expect((await app.request("/charges", charge("k2", { token: "tok_decline" }))).status).toBe(402);
    expect(await (await app.request("/stats")).json()).toMatchObject({ charges: 1, declined: 1 });
  });

  it("answers 409 while the same key is still being charged", async () => {
    const state = new GatewayState({ controls: { latency_ms: 30 } });
    const app = createGatewayApp(state);
    const [a, b] = await Promise.all([
      app.request("/charges", charge("k3")),
      app.request("/charges", charge("k3")),
    ]);
    expect([a.status, b.status].sort()).toEqual([201, 409]);
    expect(state.getStats().charges).toBe(1);
  });

  it("switches throttling, errors, lost responses and outages via /control", async () => {
    const app = createGatewayApp();
    const control = (body: object) =>
      app.request("/control", {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "content-type": "application/json" },
      });
    await control({ throttle_rate: 1, retry_after_s: 4 });
    const throttled = await app.request("/charges", charge("k4"));
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get("retry-after")).toBe("4");
    await control({ throttle_rate: 0, error_rate: 1 });
    expect((await app.request("/charges", charge("k4"))).status).toBe(500);
    await control({ error_rate: 0, outage_ms: 60_000 });
    expect((await app.request("/charges", charge("k4"))).status).toBe(503);
    await control({ outage_until: 0, fail_after_charge_rate: 1 });
    expect((await app.request("/charges", charge("k4"))).status).toBe(502);
    await control({ fail_after_charge_rate: 0 });
    expect((await app.request("/charges", charge("k4"))).status).toBe(200);
    expect((await control({ error_rate: 2 })).status).toBe(400);
    expect(await (await app.request("/stats")).json()).toMatchObject({ charges: 1, throttled: 1, errors: 2 });
  });

  it("refunds a charge once per key, and only successful charges", async () => {
    const state = new GatewayState();
    const app = createGatewayApp(state);
    const { id } = (await (await app.request("/charges", charge("c1"))).json()) as { id: string };
    const refund = (key: string, charge_id: string) =>
      app.request("/refunds", {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify({ charge_id }),
      });
    const first = await refund("r1", id);
    expect(first.status).toBe(201);
    const again = await refund("r1", id);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(await first.json());
    expect((await refund("r2", "ch_missing")).status).toBe(404);
    const declined = (await (
      await app.request("/charges", charge("c2", { token: "tok_decline" }))
    ).json()) as {
      charge: { id: string };
    };
    expect((await refund("r3", declined.charge.id)).status).toBe(422);
    expect(state.getStats()).toMatchObject({ refunds: 1, refunds_by_charge: { [id]: 1 } });
  });
});
