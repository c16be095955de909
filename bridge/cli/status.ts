import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
} from "@nats-io/jetstream";
import { type Config, durableName, maxAckPending } from "../config.ts";
import { listPauses, openControl, type PauseRecord } from "../control.ts";
import { deadLetterSubject } from "../dead-letter-headers.ts";
import { connectNats } from "../nats.ts";
import { presenceBucket, type ReplicaReport, readReports } from "../presence.ts";
import { perSecondOf } from "../rate-limit.ts";
import { CONFIG_OPTION, type Command, configFrom, parseFlags, UsageError } from "./common.ts";

/** One route as JetStream and the control bucket see it: every replica's share together. */
export interface RouteStatus {
  route: string;
  stream: string;
  /** Undefined when the durable does not exist (not provisioned, or deleted). */
  consumer?: {
    /** In the stream, not yet delivered to any replica: the lag. */
    pending: number;
    /** Delivered to a replica and not yet acked: in flight, waiting, or held by a pause. */
    unacked: number;
    max_unacked: number;
    /** Messages delivered more than once so far (retries and redeliveries). */
    redelivered: number;
    /** Pull requests waiting on the server: about one per replica consuming the route. */
    pulls: number;
  };
  /** Messages of this route in the dead-letter stream. */
  dead_letters: number;
  /** An operator's pause (`jetway pause`), or why its record is unreadable. */
  paused?: PauseRecord | string;
  /** A route with `rate_limit`: messages per second in all, which the replicas split between them. */
  rate_limit?: { per_second: number };
  /** What each bridge replica consuming the route last reported (within the last few seconds). */
  replicas: ReplicaReport[];
}

/** The stream or the durable does not exist: not provisioned yet, or deleted. */
const missing = (error: unknown): boolean =>
  error instanceof JetStreamApiError &&
  (error.code === JetStreamApiCodes.StreamNotFound || error.code === JetStreamApiCodes.ConsumerNotFound);

async function deadLettersByRoute(jsm: JetStreamManager, config: Config): Promise<Map<string, number>> {
  const { stream, subject_prefix: prefix } = config.dead_letter;
  try {
    const info = await jsm.streams.info(stream, { subjects_filter: `${prefix}.>` });
    const counts = info.state.subjects ?? {};
    return new Map(config.routes.map((r) => [r.name, counts[deadLetterSubject(prefix, r.name)] ?? 0]));
  } catch (error) {
    // Not provisioned yet: nothing was dead-lettered.
    if (missing(error)) return new Map();
    throw error;
  }
}

/** Every route of the config: consumer state, dead letters and operator pauses. */
export async function routeStatuses(
  jsm: JetStreamManager,
  config: Config,
  pauses: Map<string, PauseRecord | string>,
): Promise<RouteStatus[]> {
  const [deadLetters, reports] = await Promise.all([
    deadLettersByRoute(jsm, config),
    readReports(jsm, presenceBucket(config.control)),
  ]);
  return Promise.all(
    config.routes.map(async (route): Promise<RouteStatus> => {
      const info = await jsm.consumers.info(route.stream, durableName(route)).catch((error: unknown) => {
        if (missing(error)) return undefined;
        throw error;
      });
      const paused = pauses.get(route.name);
      const replicas = reports.get(route.name) ?? [];
      return {
        route: route.name,
        stream: route.stream,
        ...(info && {
          consumer: {
            pending: info.num_pending,
            unacked: info.num_ack_pending,
            max_unacked: info.config.max_ack_pending ?? maxAckPending(route),
            redelivered: info.num_redelivered,
            pulls: info.num_waiting,
          },
        }),
        dead_letters: deadLetters.get(route.name) ?? 0,
        ...(paused !== undefined && { paused }),
        ...(route.rate_limit && {
          rate_limit: { per_second: perSecondOf(route.rate_limit) },
        }),
        replicas,
      };
    }),
  );
}

/** An operator's pause in force, if any. */
function pauseNote(paused: RouteStatus["paused"], now: number): string | undefined {
  if (paused === undefined) return undefined;
  if (typeof paused === "string") return `paused (unreadable record: ${paused})`;
  // A timed pause ends on each bridge by itself; its record stays until the next pause or resume.
  if (paused.until && Date.parse(paused.until) <= now) return undefined;
  return `paused: ${paused.reason}${paused.until ? ` (until ${paused.until})` : ""}`;
}

/** Replicas whose circuit breaker has paused the route, and what they hold. */
function breakerNote(replicas: ReplicaReport[]): string | undefined {
  const open = replicas.filter((r) => r.breaker_open);
  if (open.length === 0) return undefined;
  const held = open.reduce((sum, r) => sum + r.held, 0);
  return `circuit open on ${open.length} of ${replicas.length} replicas (${held} held)`;
}

/** What else to know of the route: no durable, an operator's pause, open circuit breakers. */
function note(r: RouteStatus, now: number): string {
  if (!r.consumer) return "no consumer: jetway provision creates it";
  const notes = [pauseNote(r.paused, now), breakerNote(r.replicas)].filter((n) => n !== undefined);
  return notes.length > 0 ? notes.join("; ") : "-";
}

/** A table: one line per route, columns padded to their widest cell. */
export function formatStatus(rows: RouteStatus[], now = Date.now()): string {
  const header = [
    "route",
    "stream",
    "replicas",
    "pending",
    "unacked",
    "redelivered",
    "pulls",
    "dead letters",
    "rate limit",
    "note",
  ];
  const lines = rows.map((r) => {
    const c = r.consumer;
    const counts = c
      ? [String(c.pending), `${c.unacked}/${c.max_unacked}`, String(c.redelivered), String(c.pulls)]
      : ["-", "-", "-", "-"];
    const limit = r.rate_limit ? `${Number(r.rate_limit.per_second.toPrecision(6))}/s` : "-";
    return [
      r.route,
      r.stream,
      String(r.replicas.length),
      ...counts,
      String(r.dead_letters),
      limit,
      note(r, now),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  return [header, ...lines]
    .map((cells) =>
      cells
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/**
 * `jetway status`: each route's replicas, lag, messages out with the replicas, retries, consumers pulling,
 * dead letters, rate limit, operator pause and open circuit breakers, read from JetStream, the control bucket
 * and what each replica reports in the presence bucket.
 */
export const command: Command = {
  usage: "jetway status [--json] --config FILE",
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { ...CONFIG_OPTION, json: { type: "boolean" } }, true);
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const config = await configFrom(values.config);
    const { nc } = await connectNats(config.nats);
    try {
      const pauses = await listPauses(await openControl(nc, config.control));
      const rows = await routeStatuses(await jetstreamManager(nc), config, pauses);
      process.stdout.write(`${values.json ? JSON.stringify(rows) : formatStatus(rows)}\n`);
      return 0;
    } finally {
      await nc.close();
    }
  },
};
