import { type Context, Hono } from "hono";
import { z } from "zod";
import { readText } from "../sdk/request-body.ts";
import { type ChargeRequest, type Controls, GatewayState } from "./state.ts";

const chargeBody = z.object({
  amount_minor: z.number().int().min(1),
  currency: z.string().regex(/^[A-Z]{3}$/),
  token: z.string().min(1),
  description: z.string().max(500).optional(),
});

const controlBody = z
  .object({
    latency_ms: z.number().int().min(0),
    error_rate: z.number().min(0).max(1),
    throttle_rate: z.number().min(0).max(1),
    retry_after_s: z.number().int().min(0),
    fail_after_charge_rate: z.number().min(0).max(1),
    /** Convenience: start a full outage lasting this long from now. */
    outage_ms: z.number().int().min(0),
    outage_until: z.number().int().min(0),
  })
  .partial()
  .strict();

/** The parsed JSON body, or undefined when it is not JSON. */
const jsonBody = (c: Context): Promise<unknown> =>
  readText(c)
    .then((text) => JSON.parse(text) as unknown)
    .catch(() => undefined);

type Fault = { kind: "outage" } | { kind: "error" } | { kind: "throttled"; retryAfterS: number };

/** The answer for a failure the control switches injected; undefined for any other result. */
function injectedFault(c: Context, result: { kind: string } | Fault): Response | undefined {
  switch (result.kind) {
    case "outage":
      return c.json({ error: { code: "service_unavailable" } }, 503);
    case "error":
      return c.json({ error: { code: "internal_error" } }, 500);
    case "throttled":
      c.header("Retry-After", String((result as Fault & { kind: "throttled" }).retryAfterS));
      return c.json({ error: { code: "rate_limited" } }, 429);
    default:
      return undefined;
  }
}

/**
 * The simulator's HTTP surface: POST /charges and POST /refunds (Idempotency-Key required),
 * GET /charges/:id, GET /stats,
 * GET|POST /control to change latency, failure rates and outages at run time, POST /reset.
 */
export function createGatewayApp(state = new GatewayState()) {
  const app = new Hono();

  app.post("/charges", async (c) => {
    const key = c.req.header("idempotency-key");
    if (!key) return c.json({ error: { code: "idempotency_key_required" } }, 400);
    const parsed = chargeBody.safeParse(await jsonBody(c));
    if (!parsed.success) {
      const fields = parsed.error.issues.map((i) => i.path.join("."));
      return c.json({ error: { code: "invalid_request", fields } }, 400);
    }
    const result = await state.charge(key, parsed.data as ChargeRequest);
    const fault = injectedFault(c, result);
    if (fault) return fault;
    switch (result.kind) {
      case "in_flight":
        return c.json({ error: { code: "idempotency_key_in_use" } }, 409);
      case "key_reused":
        return c.json({ error: { code: "idempotency_key_reused" } }, 422);
      case "charged": {
        if (result.lostResponse) return c.json({ error: { code: "bad_gateway" } }, 502);
        if (result.replayed) c.header("Idempotent-Replayed", "true");
        const { charge } = result;
        if (charge.status === "declined") {
          return c.json({ error: { code: charge.decline_code, charge_id: charge.id }, charge }, 402);
        }
        return c.json(charge, result.replayed ? 200 : 201);
      }
    }
  });

  app.post("/refunds", async (c) => {
    const key = c.req.header("idempotency-key");
    if (!key) return c.json({ error: { code: "idempotency_key_required" } }, 400);
    const body = ((await jsonBody(c)) ?? {}) as { charge_id?: unknown };
    if (typeof body.charge_id !== "string") {
      return c.json({ error: { code: "invalid_request", fields: ["charge_id"] } }, 400);
    }
    const result = state.refund(key, body.charge_id);
    const fault = injectedFault(c, result);
    if (fault) return fault;
    switch (result.kind) {
      case "no_charge":
        return c.json({ error: { code: "no_such_charge" } }, 404);
      case "not_refundable":
        return c.json({ error: { code: "charge_not_refundable" } }, 422);
      case "key_reused":
        return c.json({ error: { code: "idempotency_key_reused" } }, 422);
      case "refunded":
        if (result.replayed) c.header("Idempotent-Replayed", "true");
        return c.json(result.refund, result.replayed ? 200 : 201);
    }
  });

  app.get("/charges/:id", (c) => {
    const charge = state.find(c.req.param("id"));
    return charge ? c.json(charge) : c.json({ error: { code: "not_found" } }, 404);
  });

  app.get("/stats", (c) => c.json(state.getStats()));
  app.get("/control", (c) => c.json(state.controls));
  app.post("/control", async (c) => {
    const parsed = controlBody.safeParse(await jsonBody(c));
    if (!parsed.success)
      return c.json({ error: { code: "invalid_request", issues: parsed.error.issues } }, 400);
    const { outage_ms, ...patch } = parsed.data;
    const next: Partial<Controls> = { ...patch };
    if (outage_ms !== undefined) next.outage_until = Date.now() + outage_ms;
    return c.json(state.setControls(next));
  });
  app.post("/reset", (c) => {
    state.reset();
    return c.json({ ok: true });
  });
  app.get("/healthz", (c) => c.text("ok"));

  return app;
}
