import { z } from "zod";
import { currency, entityId, lineItem } from "../../schemas/index.ts";
import { sha256, toHex } from "../sdk/hashing.ts";

/** The body of POST /orders. The total is computed here, never trusted from the client. */
export const orderRequest = z
  .object({
    customer_id: entityId,
    items: z.array(lineItem).min(1).max(100),
    currency,
    /** Opaque card-vault token; never a card number. */
    payment_token: z.string().min(1).max(256),
  })
  .strict();

export type OrderRequest = z.output<typeof orderRequest>;

export interface FieldIssue {
  path: string;
  message: string;
}

/** What a refused request gets back: every offending field named. */
export interface ValidationErrorBody {
  error: { code: "invalid_request"; message: string; fields: FieldIssue[] };
}

export type ParsedRequest =
  | { ok: true; value: OrderRequest; total_minor: number }
  | { ok: false; status: 400 | 422; body: ValidationErrorBody };

const refuse = (status: 400 | 422, fields: FieldIssue[]): ParsedRequest => ({
  ok: false,
  status,
  body: {
    error: {
      code: "invalid_request",
      message: fields.map((f) => `${f.path}: ${f.message}`).join("; "),
      fields,
    },
  },
});

/** 400 for a body that is not a JSON object, 422 naming each invalid field for one that is. */
export function parseOrderRequest(text: string): ParsedRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return refuse(400, [{ path: "(body)", message: "not valid JSON" }]);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return refuse(400, [{ path: "(body)", message: "expected a JSON object" }]);
  }
  const result = orderRequest.safeParse(raw);
  if (!result.success) {
    return refuse(
      422,
      result.error.issues.map((i) => ({ path: i.path.join(".") || "(body)", message: i.message })),
    );
  }
  const perSku = new Map<string, number>();
  for (const { sku, quantity } of result.data.items) perSku.set(sku, (perSku.get(sku) ?? 0) + quantity);
  for (const [sku, quantity] of perSku) {
    if (!Number.isSafeInteger(quantity))
      return refuse(422, [{ path: "items", message: `the quantities of ${sku} add up past 2^53` }]);
  }
  const total = result.data.items.reduce((sum, i) => sum + i.quantity * i.unit_price_minor, 0);
  if (!Number.isSafeInteger(total))
    return refuse(422, [{ path: "items", message: "order total is too large" }]);
  // Paid by card: a card gateway refuses to charge nothing.
  if (total === 0) return refuse(422, [{ path: "items", message: "order total must be above 0" }]);
  return { ok: true, value: result.data, total_minor: total };
}

/** SHA-256 of the validated request: a reused Idempotency-Key must come with the same order. */
export async function requestHash(request: OrderRequest): Promise<string> {
  return toHex(await sha256(JSON.stringify(request)));
}
