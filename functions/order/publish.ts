/** The bridge's publish ingress could not take the event; the order stays `pending_publish`. */
export class PublishError extends Error {
  override name = "PublishError";
  readonly status: number | undefined;
  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }
}

export interface PublishTarget {
  /** Base URL of the bridge, e.g. http://127.0.0.1:8080. */
  url: string;
  token?: string | undefined;
  timeoutMs?: number;
  fetch?: typeof fetch;
  traceparent?: string | undefined;
}

/**
 * Publishes through the bridge's HTTP ingress, so functions never hold a NATS connection.
 * Idempotency-Key becomes the JetStream Nats-Msg-Id: publishing the same event again is deduplicated.
 */
export async function publishEvent(
  target: PublishTarget,
  subject: string,
  messageId: string,
  data: unknown,
): Promise<void> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "idempotency-key": messageId,
  };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  if (target.traceparent) headers.traceparent = target.traceparent;
  let res: Response;
  try {
    res = await (target.fetch ?? fetch)(new URL(`/v1/publish/${subject}`, target.url), {
      method: "POST",
      headers,
      body: JSON.stringify(data),
      signal: AbortSignal.timeout(target.timeoutMs ?? 5_000),
    });
  } catch (cause) {
    throw new PublishError(`publish ingress unreachable: ${(cause as Error).message}`, { cause });
  }
  await res.body?.cancel();
  if (!res.ok) throw new PublishError(`publish ingress answered ${res.status}`, { status: res.status });
}
