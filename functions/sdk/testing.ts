import type { EventInput, EventType } from "../../schemas/define.ts";
import { BATCH_CONTENT_TYPE, HEADERS, signBatch, signDelivery } from "./contract.ts";

/** Anything with Hono's `request()`: a function's `.app`. */
export interface RequestTarget {
  request(path: string, init?: RequestInit, env?: Record<string, unknown>): Response | Promise<Response>;
}

export interface InvokeOptions {
  id?: string;
  /** Signs the body with this secret and passes it as JETWAY_SECRET in the env. */
  secret?: string;
  /** Signature timestamp (unix seconds), to test expiry. */
  signedAtS?: number;
  stream?: string;
  seq?: number;
  delivery?: number;
  maxDeliver?: number;
  traceparent?: string;
  headers?: Record<string, string>;
  env?: Record<string, unknown>;
  /** The function's delivery path, as given to defineFunction (default /events). */
  path?: string;
}

/**
 * Delivers one event the way the bridge does (binary-mode CloudEvent, optionally signed). For tests of
 * functions: `await invoke(payment.app, OrderCreated, data, { secret })`.
 */
export async function invoke<T extends EventType>(
  app: RequestTarget,
  type: T | string,
  data: EventInput<T> | string,
  options: InvokeOptions = {},
): Promise<Response> {
  const body = typeof data === "string" ? data : JSON.stringify(data);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    [HEADERS.ceSpecVersion]: "1.0",
    [HEADERS.ceId]: options.id ?? "test-1",
    [HEADERS.ceType]: typeof type === "string" ? type : type.subject,
    [HEADERS.ceSource]: "jetway-test",
    [HEADERS.stream]: options.stream ?? "TEST",
    [HEADERS.seq]: String(options.seq ?? 1),
    [HEADERS.delivery]: String(options.delivery ?? 1),
    ...(options.maxDeliver !== undefined ? { [HEADERS.maxDeliver]: String(options.maxDeliver) } : {}),
    ...(options.traceparent ? { [HEADERS.traceparent]: options.traceparent } : {}),
    ...options.headers,
  };
  if (options.secret) {
    const identity = { id: headers[HEADERS.ceId] ?? "", type: headers[HEADERS.ceType] ?? "" };
    headers[HEADERS.signature] = await signDelivery(options.secret, identity, body, options.signedAtS);
  }
  const env = { ...(options.secret ? { JETWAY_SECRET: options.secret } : {}), ...options.env };
  return app.request(options.path ?? "/events", { method: "POST", headers, body }, env);
}

/** One structured-mode CloudEvent of a batch, as the bridge builds it. */
export function batchEvent(
  id: string,
  type: EventType | string,
  data: unknown,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    specversion: "1.0",
    id,
    source: "jetway-test",
    type: typeof type === "string" ? type : type.subject,
    time: new Date(0).toISOString(),
    datacontenttype: "application/json",
    data,
    jetwayroute: "test",
    jetwaystream: "TEST",
    jetwayseq: 1,
    jetwaydelivery: 1,
    jetwaymaxdeliver: 5,
    ...extra,
  };
}

/** Delivers a batch (`BATCH_CONTENT_TYPE`), signed over the whole body when a secret is given. */
export async function invokeBatch(
  app: RequestTarget,
  events: unknown[] | string,
  options: Pick<InvokeOptions, "secret" | "env" | "path" | "headers"> = {},
): Promise<Response> {
  const body = typeof events === "string" ? events : JSON.stringify(events);
  const headers: Record<string, string> = { "content-type": BATCH_CONTENT_TYPE };
  if (options.secret) headers[HEADERS.signature] = await signBatch(options.secret, body);
  Object.assign(headers, options.headers);
  const env = { ...(options.secret ? { JETWAY_SECRET: options.secret } : {}), ...options.env };
  return app.request(options.path ?? "/events", { method: "POST", headers, body }, env);
}
