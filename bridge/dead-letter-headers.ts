/**
 * Headers a dead letter carries beside the original message's own headers; the body is the original
 * payload, untouched. `jetway dlq` reads these, and redrive strips them again.
 */
export const DLQ_HEADERS = {
  reason: "Jetway-Dlq-Reason",
  status: "Jetway-Dlq-Status",
  response: "Jetway-Dlq-Response",
  route: "Jetway-Dlq-Route",
  url: "Jetway-Dlq-Url",
  subject: "Jetway-Dlq-Subject",
  stream: "Jetway-Dlq-Stream",
  seq: "Jetway-Dlq-Seq",
  delivery: "Jetway-Dlq-Delivery",
  publishedAt: "Jetway-Dlq-Published-At",
  deadLetteredAt: "Jetway-Dlq-Dead-Lettered-At",
  contentType: "Jetway-Dlq-Content-Type",
  /** The original Nats-Msg-Id (Nats-* headers are server directives and are not copied verbatim). */
  msgId: "Jetway-Dlq-Msg-Id",
  /**
   * What a dead letter too large to store whole left out (`headers`, or `headers, payload`): those are read
   * from the original message (Jetway-Dlq-Stream / -Seq) while its stream still holds it.
   */
  trimmed: "Jetway-Dlq-Trimmed",
} as const;

/** Nats-Msg-Id of a dead letter: one per original message, so a retried DLQ publish is deduplicated. */
export const deadLetterMsgId = (route: string, stream: string, seq: number): string =>
  `dlq:${route}:${stream}:${seq}`;

/** The DLQ subject of a route. */
export const deadLetterSubject = (prefix: string, route: string): string => `${prefix}.${route}`;
