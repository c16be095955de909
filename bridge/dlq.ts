import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type StoredMsg,
} from "@nats-io/jetstream";
import { type MsgHdrs, headers as natsHeaders } from "@nats-io/nats-core";
import type { Config } from "./config.ts";
import { DLQ_HEADERS, deadLetterSubject } from "./dead-letter-headers.ts";
import { isReservedSubject } from "./subjects.ts";

type DeadLetterConfig = Config["dead_letter"];

/** A dead letter as `jetway dlq` shows it. */
export interface DeadLetter {
  /** Sequence in the dead-letter stream. */
  seq: number;
  route: string;
  /** Subject the original message was published to (redrive target). */
  subject: string;
  reason: string;
  status: string;
  deliveries: string;
  deadLetteredAt: string;
  /** Original stream/seq. */
  origin: string;
  size: number;
}

export interface DeadLetterDetail extends DeadLetter {
  headers: Record<string, string[]>;
  body: string;
}

/** A dead letter cannot be read or redriven (missing, or without its original subject). */
export class DlqError extends Error {
  override name = "DlqError";
}

function summarize(m: { seq: number; header: MsgHdrs; data: Uint8Array }): DeadLetter {
  const h = (key: string) => m.header.get(key) ?? "";
  return {
    seq: m.seq,
    route: h(DLQ_HEADERS.route),
    subject: h(DLQ_HEADERS.subject),
    reason: h(DLQ_HEADERS.reason),
    status: h(DLQ_HEADERS.status),
    deliveries: h(DLQ_HEADERS.delivery),
    deadLetteredAt: h(DLQ_HEADERS.deadLetteredAt),
    origin: `${h(DLQ_HEADERS.stream)}:${h(DLQ_HEADERS.seq)}`,
    size: m.data.length,
  };
}

function filterFor(dl: DeadLetterConfig, route?: string): string {
  return route ? deadLetterSubject(dl.subject_prefix, route) : `${dl.subject_prefix}.>`;
}

/**
 * Dead letters in stream order, oldest first. Reads with an ordered (ephemeral) consumer, so listing
 * never disturbs the stream and works on 2.9 as on 2.10+.
 */
export async function listDeadLetters(
  js: JetStreamClient,
  jsm: JetStreamManager,
  dl: DeadLetterConfig,
  options: { route?: string | undefined; limit?: number | undefined } = {},
): Promise<DeadLetter[]> {
  const filter = filterFor(dl, options.route);
  const info = await jsm.streams.info(dl.stream, { subjects_filter: filter });
  const available = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
  const want = Math.min(available, options.limit ?? Number.POSITIVE_INFINITY);
  if (want <= 0) return [];
  const consumer = await js.consumers.get(dl.stream, { filter_subjects: filter });
  const out: DeadLetter[] = [];
  try {
    while (out.length < want) {
      const batch = await consumer.fetch({ max_messages: Math.min(want - out.length, 256), expires: 2_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        out.push(summarize({ seq: m.seq, header: m.headers ?? natsHeaders(), data: m.data }));
        if (m.info.pending === 0 || out.length >= want) {
          batch.stop();
          return out;
        }
      }
      if (got === 0) break;
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
  return out;
}

async function getLetter(jsm: JetStreamManager, dl: DeadLetterConfig, seq: number): Promise<StoredMsg> {
  try {
    const m = await jsm.streams.getMessage(dl.stream, { seq });
    if (m) return m;
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.NoMessageFound)) throw error;
  }
  throw new DlqError(`no dead letter with sequence ${seq} in stream ${dl.stream}`);
}

/** One dead letter with all its headers and its body (the original payload). */
export async function showDeadLetter(
  jsm: JetStreamManager,
  dl: DeadLetterConfig,
  seq: number,
): Promise<DeadLetterDetail> {
  const m = await getLetter(jsm, dl, seq);
  const headers: Record<string, string[]> = {};
  for (const [key, values] of m.header ?? []) headers[key] = values;
  return { ...summarize(m), headers, body: new TextDecoder().decode(m.data) };
}

/** The original message's headers: Jetway-Dlq-* and the Nats-* directives removed, its content type kept. */
export function originalHeaders(
  source: MsgHdrs | undefined,
  contentType = source?.get(DLQ_HEADERS.contentType),
): MsgHdrs {
  const out = natsHeaders();
  const dlqKeys = new Set(Object.values(DLQ_HEADERS).map((k) => k.toLowerCase()));
  for (const [key, values] of source ?? []) {
    const lower = key.toLowerCase();
    // Nats-* are the server's directives (the letter's own Nats-Msg-Id above all), not the message's.
    if (dlqKeys.has(lower) || lower.startsWith("nats-")) continue;
    for (const value of values) out.append(key, value);
  }
  if (contentType && !out.has("Content-Type")) out.set("Content-Type", contentType);
  return out;
}

/**
 * The message a dead letter stands for: its own payload and headers, or, for a letter stored trimmed (too
 * large whole), what it left out read back from the original in its stream.
 */
async function asPublished(
  jsm: JetStreamManager,
  letter: StoredMsg,
): Promise<{ data: Uint8Array; headers: MsgHdrs }> {
  const trimmed = letter.header?.get(DLQ_HEADERS.trimmed);
  if (!trimmed) return { data: letter.data, headers: originalHeaders(letter.header) };
  const stream = letter.header.get(DLQ_HEADERS.stream);
  const seq = Number(letter.header.get(DLQ_HEADERS.seq));
  const original = await jsm.streams.getMessage(stream, { seq }).catch((error: unknown) => {
    if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.NoMessageFound) return null;
    throw error;
  });
  if (!original) {
    throw new DlqError(
      `the dead letter left out the original's ${trimmed}, and ${stream}:${seq} is gone from its stream`,
    );
  }
  const headers = originalHeaders(original.header, letter.header.get(DLQ_HEADERS.contentType));
  return { data: trimmed.includes("payload") ? original.data : letter.data, headers };
}

export type RedriveSelection = { route: string } | { from: number; to: number };

export interface RedriveResult {
  seq: number;
  subject: string;
  /** Sequence in the source stream after republishing (absent in a dry run or on failure). */
  newSeq?: number;
  duplicate?: boolean;
  error?: string;
}

/** Each selected dead letter, in order: a hole in a --seq range (already redriven or dropped) is skipped. */
async function* selected(
  js: JetStreamClient,
  jsm: JetStreamManager,
  dl: DeadLetterConfig,
  selection: RedriveSelection,
): AsyncGenerator<{ seq: number; letter: StoredMsg }> {
  const seqs =
    "route" in selection
      ? (await listDeadLetters(js, jsm, dl, { route: selection.route })).map((l) => l.seq)
      : Array.from({ length: selection.to - selection.from + 1 }, (_, i) => selection.from + i);
  for (const seq of seqs) {
    let letter: StoredMsg;
    try {
      letter = await getLetter(jsm, dl, seq);
    } catch (error) {
      if (error instanceof DlqError && !("route" in selection)) continue;
      throw error;
    }
    yield { seq, letter };
  }
}

/**
 * Re-publishes each selected dead letter (original body and headers) to its original subject with
 * Nats-Msg-Id `redrive:<dlq seq>`, so a repeated redrive is deduplicated, then deletes it from the DLQ.
 */
export async function redrive(
  js: JetStreamClient,
  jsm: JetStreamManager,
  dl: DeadLetterConfig,
  selection: RedriveSelection,
  { dryRun = false } = {},
): Promise<RedriveResult[]> {
  const results: RedriveResult[] = [];
  for await (const { seq, letter } of selected(js, jsm, dl, selection)) {
    const subject = letter.header?.get(DLQ_HEADERS.subject);
    if (!subject) {
      results.push({ seq, subject: "", error: `missing ${DLQ_HEADERS.subject} header` });
      continue;
    }
    if (isReservedSubject(subject)) {
      // No message of a stream was ever published there: this letter was forged.
      results.push({ seq, subject, error: `refusing to redrive to the reserved subject ${subject}` });
      continue;
    }
    if (dryRun) {
      results.push({ seq, subject });
      continue;
    }
    try {
      const { data, headers } = await asPublished(jsm, letter);
      const ack = await js.publish(subject, data, { headers, msgID: `redrive:${seq}` });
      await jsm.streams.deleteMessage(dl.stream, seq);
      results.push({ seq, subject, newSeq: ack.seq, duplicate: ack.duplicate });
    } catch (error) {
      results.push({ seq, subject, error: (error as Error).message });
    }
  }
  return results;
}

/** A dead letter given up on: what it was, for the operator's record. */
export interface DropResult {
  seq: number;
  route: string;
  subject: string;
  reason: string;
  error?: string;
}

/**
 * Deletes each selected dead letter for good, without sending it anywhere: for messages an operator has
 * decided will never succeed. Each is listed with its route, subject and reason first.
 */
export async function drop(
  js: JetStreamClient,
  jsm: JetStreamManager,
  dl: DeadLetterConfig,
  selection: RedriveSelection,
  { dryRun = false } = {},
): Promise<DropResult[]> {
  const results: DropResult[] = [];
  for await (const { seq, letter } of selected(js, jsm, dl, selection)) {
    const h = letter.header;
    const result: DropResult = {
      seq,
      route: h?.get(DLQ_HEADERS.route) ?? "",
      subject: h?.get(DLQ_HEADERS.subject) ?? "",
      reason: h?.get(DLQ_HEADERS.reason) ?? "",
    };
    if (!dryRun) {
      await jsm.streams.deleteMessage(dl.stream, seq).catch((error: unknown) => {
        result.error = (error as Error).message;
      });
    }
    results.push(result);
  }
  return results;
}
