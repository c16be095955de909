import { InvalidEventError, RetryableError } from "../sdk/index.ts";

/**
 * The payment gateway over HTTP (the simulator in functions/gateway-sim speaks the same dialect). Outcomes
 * are values; only failures that say nothing about the card are errors: 429 / 5xx / 409 (key in flight) /
 * network / timeout → RetryableError, a request the gateway refuses outright → InvalidEventError.
 */

export interface ChargeInput {
  amount_minor: number;
  currency: string;
  token: string;
  description?: string;
}

export type ChargeOutcome =
  | { status: "succeeded"; chargeId: string }
  | { status: "declined"; code: string; chargeId: string | undefined };

export interface GatewayOptions {
  baseUrl: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** Retry-After as seconds (delta or HTTP date); undefined when absent or unreadable. */
export function retryAfterSeconds(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const n = Number(header);
  if (Number.isFinite(n) && n >= 0) return n;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

interface ChargeBody {
  id?: string;
  status?: string;
  error?: { code?: string; charge_id?: string };
}

const DECLINE_CODE = /^[a-z][a-z0-9_]{0,63}$/;

/**
 * The answer's body. One that cannot be read (the connection dropped or the timeout fired mid-body) says
 * nothing about what the gateway did, which may have been to charge: retryable, since the same key replays it.
 */
async function readBody(res: Response, what: string): Promise<ChargeBody> {
  const text = await res.text().catch((cause: unknown) => {
    throw new RetryableError(`payment gateway's answer to the ${what} was cut off (${res.status})`, {
      cause,
    });
  });
  try {
    return (text ? JSON.parse(text) : {}) as ChargeBody;
  } catch {
    return {};
  }
}

/** A 2xx without what it must carry: what the gateway did is unknown, and a retry under the same key replays it. */
function unreadableSuccess(res: Response, what: string): RetryableError {
  return new RetryableError(
    `payment gateway's ${res.status} answer to the ${what} did not say what was done`,
  );
}

export async function charge(
  options: GatewayOptions,
  idempotencyKey: string,
  input: ChargeInput,
): Promise<ChargeOutcome> {
  const doFetch = options.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(new URL("/charges", options.baseUrl), {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": idempotencyKey },
      body: JSON.stringify(input),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (cause) {
    throw new RetryableError(`payment gateway unreachable: ${(cause as Error).message}`, { cause });
  }
  const body = await readBody(res, "charge");
  if (res.ok && body.status === "succeeded" && body.id) return { status: "succeeded", chargeId: body.id };
  if (res.ok) throw unreadableSuccess(res, "charge");
  if (res.status === 402) {
    const code = body.error?.code && DECLINE_CODE.test(body.error.code) ? body.error.code : "card_declined";
    return { status: "declined", code, chargeId: body.error?.charge_id };
  }
  if (res.status === 429) {
    const retryAfterS = retryAfterSeconds(res.headers.get("retry-after"));
    throw new RetryableError("payment gateway rate limit", retryAfterS === undefined ? {} : { retryAfterS });
  }
  if (res.status >= 500 || res.status === 409 || res.status === 408) {
    const retryAfterS = retryAfterSeconds(res.headers.get("retry-after"));
    throw new RetryableError(
      `payment gateway answered ${res.status}`,
      retryAfterS === undefined ? {} : { retryAfterS },
    );
  }
  throw new InvalidEventError(`payment gateway refused the charge (${res.status} ${body.error?.code ?? ""})`);
}

/** Refunds a charge in full; the same idempotency key always yields the same refund. */
export async function refund(
  options: GatewayOptions,
  idempotencyKey: string,
  chargeId: string,
): Promise<string> {
  const doFetch = options.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(new URL("/refunds", options.baseUrl), {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": idempotencyKey },
      body: JSON.stringify({ charge_id: chargeId }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (cause) {
    throw new RetryableError(`payment gateway unreachable: ${(cause as Error).message}`, { cause });
  }
  const body = await readBody(res, "refund");
  if (res.ok && body.id) return body.id;
  if (res.ok) throw unreadableSuccess(res, "refund");
  const retryAfterS = retryAfterSeconds(res.headers.get("retry-after"));
  if (res.status === 429 || res.status >= 500 || res.status === 409) {
    throw new RetryableError(
      `payment gateway answered ${res.status} to a refund`,
      retryAfterS === undefined ? {} : { retryAfterS },
    );
  }
  throw new InvalidEventError(`payment gateway refused the refund (${res.status} ${body.error?.code ?? ""})`);
}
