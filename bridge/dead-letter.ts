import type { JsMsg, PubAck } from "@nats-io/jetstream";
import { Empty, type MsgHdrs, headers as natsHeaders } from "@nats-io/nats-core";
import { DLQ_HEADERS, deadLetterMsgId, deadLetterSubject } from "./dead-letter-headers.ts";
import type { MessageStore } from "./js-publisher.ts";
import { isTooLarge } from "./publisher.ts";

/** Longest response excerpt a dead letter carries. */
export const MAX_EXCERPT_BYTES = 1024;

/** A dead letter could not be published; the original must then be nak'ed, never acked or termed. */
export class DeadLetterError extends Error {
  override name = "DeadLetterError";
}

export interface DeadLetter {
  msg: JsMsg;
  route: string;
  url: string;
  /** dead_letter.subject_prefix */
  prefix: string;
  delivery: number;
  reason: string;
  status?: number | undefined;
  /** The function's response body (any length; cut here). */
  response?: string | undefined;
}

/** Header values are one line of text: control characters (CR/LF above all) become spaces. */
export function singleLine(text: string, maxBytes: number): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  let line = text.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  if (line.length > maxBytes) line = line.slice(0, maxBytes);
  while (Buffer.byteLength(line) > maxBytes) line = line.slice(0, -1);
  return line;
}

/** How much of a dead letter is left out when the whole would not fit NATS' max_payload or the DLQ's max_msg_size. */
export type Trim = "none" | "headers" | "headers, payload";

/** The original headers (minus Nats-* server directives) plus the DLQ_HEADERS vocabulary. */
export function deadLetterHeaders(letter: DeadLetter, now = new Date(), trim: Trim = "none"): MsgHdrs {
  const { msg } = letter;
  const h = natsHeaders();
  let contentType = "";
  if (msg.headers) {
    for (const [key, values] of msg.headers) {
      if (key.toLowerCase() === "content-type") contentType = values[0] ?? "";
      // Nats-* are the server's directives; a producer's own Jetway-Dlq-* would pass for the bridge's.
      if (/^(nats|jetway-dlq)-/i.test(key) || trim !== "none") continue;
      for (const value of values) h.append(key, value);
    }
  }
  const msgId = msg.headers?.get("Nats-Msg-Id");
  const reasonBytes = trim === "none" ? 4 * MAX_EXCERPT_BYTES : 256;
  h.set(DLQ_HEADERS.reason, singleLine(letter.reason, reasonBytes) || "unknown");
  if (letter.status !== undefined) h.set(DLQ_HEADERS.status, String(letter.status));
  const excerpt = letter.response && trim === "none" ? singleLine(letter.response, MAX_EXCERPT_BYTES) : "";
  if (excerpt) h.set(DLQ_HEADERS.response, excerpt);
  if (trim !== "none") h.set(DLQ_HEADERS.trimmed, trim);
  h.set(DLQ_HEADERS.route, letter.route);
  h.set(DLQ_HEADERS.url, letter.url);
  h.set(DLQ_HEADERS.subject, msg.subject);
  h.set(DLQ_HEADERS.stream, msg.info.stream);
  h.set(DLQ_HEADERS.seq, String(msg.seq));
  h.set(DLQ_HEADERS.delivery, String(letter.delivery));
  h.set(DLQ_HEADERS.publishedAt, msg.timestamp);
  h.set(DLQ_HEADERS.deadLetteredAt, now.toISOString());
  h.set(DLQ_HEADERS.contentType, contentType || "application/json");
  if (msgId) h.set(DLQ_HEADERS.msgId, msgId);
  return h;
}

/**
 * Publishes the original payload to `<prefix>.<route>` in the DLQ stream and waits for the PubAck.
 * The msg id is per original message, so a retried dead-lettering is deduplicated. A letter that does not
 * fit is stored without the original's headers, then without its payload too, rather than not at all: a
 * message can never be dead-lettered whole when it filled the server's max_payload itself.
 */
export async function publishDeadLetter(js: MessageStore, letter: DeadLetter): Promise<PubAck> {
  const { msg } = letter;
  const subject = deadLetterSubject(letter.prefix, letter.route);
  const msgID = deadLetterMsgId(letter.route, msg.info.stream, msg.seq);
  const now = new Date();
  try {
    for (const trim of ["none", "headers"] as const) {
      try {
        return await js.publish(subject, msg.data, { msgID, headers: deadLetterHeaders(letter, now, trim) });
      } catch (error) {
        if (!isTooLarge(error)) throw error;
      }
    }
    const headers = deadLetterHeaders(letter, now, "headers, payload");
    return await js.publish(subject, Empty, { msgID, headers });
  } catch (cause) {
    throw new DeadLetterError(
      `dead-lettering ${msg.info.stream}:${msg.seq} of route ${letter.route} failed: ${(cause as Error).message}`,
      { cause },
    );
  }
}
