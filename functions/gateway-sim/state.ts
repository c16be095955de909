import { ulid } from "../db/ids.ts";

/*
 * The payment gateway simulator's state and rules, free of HTTP. Dev and test only: it stands in for a
 * card processor with Stripe-like idempotency (a repeated key returns the original outcome, a key reused
 * with different parameters is refused, a key still in flight answers 409).
 */

export interface Controls {
  /** Added to every charge request. */
  latency_ms: number;
  /** Share of requests answered 500 before anything is charged. */
  error_rate: number;
  /** Share of requests answered 429 with Retry-After. */
  throttle_rate: number;
  retry_after_s: number;
  /** Share of requests that charge and then answer 502: the lost-response case a retry must survive. */
  fail_after_charge_rate: number;
  /** Epoch ms until which every request gets 503. */
  outage_until: number;
}

export const DEFAULT_CONTROLS: Controls = {
  latency_ms: 0,
  error_rate: 0,
  throttle_rate: 0,
  retry_after_s: 1,
  fail_after_charge_rate: 0,
  outage_until: 0,
};

/** Tokens that decline, with the decline code the gateway reports. */
export const DECLINING_TOKENS: Readonly<Record<string, string>> = {
  tok_decline: "card_declined",
  tok_insufficient_funds: "insufficient_funds",
  tok_expired: "expired_card",
};

export interface ChargeRequest {
  amount_minor: number;
  currency: string;
  token: string;
  description?: string | undefined;
}

export interface Charge {
  id: string;
  status: "succeeded" | "declined";
  amount_minor: number;
  currency: string;
  decline_code?: string;
  idempotency_key: string;
  created_at: string;
}

export type ChargeResult =
  | { kind: "charged"; charge: Charge; replayed: boolean; lostResponse: boolean }
  | { kind: "outage" | "error" }
  | { kind: "throttled"; retryAfterS: number }
  | { kind: "in_flight" }
  | { kind: "key_reused" };

export interface Stats {
  requests: number;
  /** Charges created (successful or declined); a correct client makes one per key. */
  charges: number;
  succeeded: number;
  declined: number;
  replays: number;
  throttled: number;
  errors: number;
  /** Charges created per idempotency key: any value above 1 is a double charge. */
  by_key_count: Record<string, number>;
  /** Requests seen per idempotency key. */
  requests_by_key: Record<string, number>;
  /** Refunds created; a correct client makes at most one per charge. */
  refunds: number;
  refunds_by_charge: Record<string, number>;
}

export interface Refund {
  id: string;
  charge_id: string;
  amount_minor: number;
  idempotency_key: string;
  created_at: string;
}

export type RefundResult =
  | { kind: "refunded"; refund: Refund; replayed: boolean }
  | { kind: "outage" | "error" | "no_charge" | "not_refundable" | "key_reused" }
  | { kind: "throttled"; retryAfterS: number };

const sameRequest = (a: ChargeRequest, b: ChargeRequest) =>
  a.amount_minor === b.amount_minor && a.currency === b.currency && a.token === b.token;

export class GatewayState {
  controls: Controls = { ...DEFAULT_CONTROLS };
  private charges = new Map<string, { request: ChargeRequest; charge: Charge }>();
  private inFlight = new Set<string>();
  private refunds = new Map<string, Refund>();
  private stats = GatewayState.emptyStats();
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(options: { random?: () => number; now?: () => number; controls?: Partial<Controls> } = {}) {
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.setControls(options.controls ?? {});
  }

  private static emptyStats(): Stats {
    return {
      requests: 0,
      charges: 0,
      succeeded: 0,
      declined: 0,
      replays: 0,
      throttled: 0,
      errors: 0,
      by_key_count: {},
      requests_by_key: {},
      refunds: 0,
      refunds_by_charge: {},
    };
  }

  setControls(patch: Partial<Controls>): Controls {
    this.controls = { ...this.controls, ...patch };
    return this.controls;
  }

  reset(): void {
    this.controls = { ...DEFAULT_CONTROLS };
    this.charges.clear();
    this.inFlight.clear();
    this.refunds.clear();
    this.stats = GatewayState.emptyStats();
  }

  getStats(): Stats {
    return structuredClone(this.stats);
  }

  find(id: string): Charge | undefined {
    for (const { charge } of this.charges.values()) if (charge.id === id) return charge;
    return undefined;
  }

  /** Runs one charge request through outage, throttle, error and idempotency rules. */
  async charge(key: string, request: ChargeRequest): Promise<ChargeResult> {
    const s = this.stats;
    const c = this.controls;
    const refused = this.gate(key);
    if (refused) return refused;
    const existing = this.charges.get(key);
    if (existing) {
      if (!sameRequest(existing.request, request)) return { kind: "key_reused" };
      s.replays++;
      return { kind: "charged", charge: existing.charge, replayed: true, lostResponse: false };
    }
    if (this.inFlight.has(key)) return { kind: "in_flight" };
    this.inFlight.add(key);
    try {
      if (c.latency_ms > 0) await new Promise((r) => setTimeout(r, c.latency_ms));
      const charge = this.create(key, request);
      return {
        kind: "charged",
        charge,
        replayed: false,
        lostResponse: this.random() < c.fail_after_charge_rate,
      };
    } finally {
      this.inFlight.delete(key);
    }
  }

  /** Outage, throttling and injected errors, applied to every request before it does anything. */
  private gate(
    key: string,
  ): { kind: "outage" | "error" } | { kind: "throttled"; retryAfterS: number } | undefined {
    const s = this.stats;
    s.requests++;
    s.requests_by_key[key] = (s.requests_by_key[key] ?? 0) + 1;
    const c = this.controls;
    if (this.now() < c.outage_until) {
      s.errors++;
      return { kind: "outage" };
    }
    if (this.random() < c.throttle_rate) {
      s.throttled++;
      return { kind: "throttled", retryAfterS: c.retry_after_s };
    }
    if (this.random() < c.error_rate) {
      s.errors++;
      return { kind: "error" };
    }
    return undefined;
  }

  /** Refunds a successful charge in full; a repeated key returns the original refund. */
  refund(key: string, chargeId: string): RefundResult {
    const refused = this.gate(key);
    if (refused) return refused;
    const existing = this.refunds.get(key);
    if (existing)
      return existing.charge_id === chargeId
        ? { kind: "refunded", refund: existing, replayed: true }
        : { kind: "key_reused" };
    const charge = this.find(chargeId);
    if (!charge) return { kind: "no_charge" };
    if (charge.status !== "succeeded") return { kind: "not_refundable" };
    const refund: Refund = {
      id: `re_${ulid()}`,
      charge_id: chargeId,
      amount_minor: charge.amount_minor,
      idempotency_key: key,
      created_at: new Date(this.now()).toISOString(),
    };
    this.refunds.set(key, refund);
    this.stats.refunds++;
    this.stats.refunds_by_charge[chargeId] = (this.stats.refunds_by_charge[chargeId] ?? 0) + 1;
    return { kind: "refunded", refund, replayed: false };
  }

  private create(key: string, request: ChargeRequest): Charge {
    const declineCode = DECLINING_TOKENS[request.token];
    const charge: Charge = {
      id: `ch_${ulid()}`,
      status: declineCode ? "declined" : "succeeded",
      amount_minor: request.amount_minor,
      currency: request.currency,
      ...(declineCode ? { decline_code: declineCode } : {}),
      idempotency_key: key,
      created_at: new Date(this.now()).toISOString(),
    };
    this.charges.set(key, { request, charge });
    const s = this.stats;
    s.charges++;
    if (declineCode) s.declined++;
    else s.succeeded++;
    s.by_key_count[key] = (s.by_key_count[key] ?? 0) + 1;
    return charge;
  }
}
