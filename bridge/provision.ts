import {
  type ConsumerConfig,
  type ConsumerInfo,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import type pino from "pino";
import { type Config, durableName, maxAckPending, type RouteConfig } from "./config.ts";

/** A stream or consumer cannot be brought to the configured shape; names what and which field. */
export class ProvisionError extends Error {
  override name = "ProvisionError";
}

type DesiredStream = Pick<
  StreamConfig,
  | "name"
  | "subjects"
  | "storage"
  | "num_replicas"
  | "retention"
  | "duplicate_window"
  | "max_age"
  | "max_bytes"
  | "max_msg_size"
>;

/** Settings that JetStream will not change on an existing stream. */
const IMMUTABLE_STREAM_FIELDS = ["storage", "retention"] as const;

/** True when the server version is at least major.minor. */
export function versionAtLeast(version: string, major: number, minor: number): boolean {
  const [maj = 0, min = 0] = version.split(".").map((part) => Number.parseInt(part, 10) || 0);
  return maj > major || (maj === major && min >= minor);
}

/** The stream configs the bridge needs: every source stream plus the dead-letter stream. */
export function desiredStreams(config: Config): DesiredStream[] {
  const streams: DesiredStream[] = config.streams.map((s) => ({
    name: s.name,
    subjects: s.subjects,
    storage: s.storage,
    num_replicas: s.replicas,
    retention: s.retention,
    duplicate_window: nanos(s.duplicate_window),
    max_age: s.max_age ? nanos(s.max_age) : 0,
    max_bytes: s.max_bytes ?? -1,
    max_msg_size: s.max_msg_size ?? -1,
  }));
  const dl = config.dead_letter;
  streams.push({
    name: dl.stream,
    subjects: [`${dl.subject_prefix}.>`],
    storage: dl.storage,
    num_replicas: dl.replicas,
    retention: "limits",
    // Wide enough that a redrive repeated within it is deduplicated (Nats-Msg-Id redrive:<seq>).
    duplicate_window: nanos(Math.min(dl.max_age ?? 120_000, 120_000)),
    max_age: dl.max_age ? nanos(dl.max_age) : 0,
    max_bytes: -1,
    max_msg_size: -1,
  });
  return streams;
}

/** The durable pull consumer of a route. No `backoff`: it would override ack_wait and spoil nak(delay). */
export function desiredConsumer(route: RouteConfig): ConsumerConfig {
  const filter = route.filter_subject;
  return {
    durable_name: durableName(route),
    description: `jetway route ${route.name}`,
    ack_policy: "explicit",
    deliver_policy: route.deliver_policy,
    replay_policy: "instant",
    ack_wait: nanos(route.ack_wait),
    max_ack_pending: maxAckPending(route),
    // The bridge counts deliveries and dead-letters itself, so the server must never stop redelivering.
    max_deliver: -1,
    ...(filter ? { filter_subject: filter } : {}),
  };
}

function isNotFound(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamNotFound || error.code === JetStreamApiCodes.ConsumerNotFound)
  );
}

async function ensureStream(jsm: JetStreamManager, want: DesiredStream, logger: pino.Logger): Promise<void> {
  let existing: StreamConfig | undefined;
  try {
    existing = (await jsm.streams.info(want.name)).config;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  try {
    if (!existing) {
      await jsm.streams.add(want);
      logger.info({ stream: want.name }, "stream created");
      return;
    }
    for (const field of IMMUTABLE_STREAM_FIELDS) {
      if (existing[field] !== want[field]) {
        throw new ProvisionError(
          `stream ${want.name}: ${field} is ${existing[field]} on the server but ${want[field]} in config; ` +
            "it cannot be changed in place (delete or migrate the stream)",
        );
      }
    }
    const { name, storage: _s, retention: _r, ...mutable } = want;
    await jsm.streams.update(name, mutable);
    logger.info({ stream: want.name }, "stream updated");
  } catch (cause) {
    if (cause instanceof ProvisionError) throw cause;
    throw new ProvisionError(`stream ${want.name}: ${(cause as Error).message}`, { cause });
  }
}

function immutableConsumerFields(version: string): (keyof ConsumerConfig)[] {
  // 2.10 can change a consumer's filter in place; 2.9 cannot.
  const fields: (keyof ConsumerConfig)[] = ["deliver_policy", "ack_policy"];
  if (!versionAtLeast(version, 2, 10)) fields.push("filter_subject");
  return fields;
}

async function ensureConsumer(
  jsm: JetStreamManager,
  route: RouteConfig,
  want: ConsumerConfig,
  version: string,
  logger: pino.Logger,
): Promise<ConsumerInfo> {
  const durable = durableName(route);
  let existing: ConsumerConfig | undefined;
  try {
    existing = (await jsm.consumers.info(route.stream, durable)).config;
  } catch (error) {
    if (!isNotFound(error))
      throw new ProvisionError(`route ${route.name}: ${(error as Error).message}`, { cause: error });
  }
  try {
    if (!existing) {
      const info = await jsm.consumers.add(route.stream, want);
      logger.info({ route: route.name, stream: route.stream, durable }, "consumer created");
      return info;
    }
    for (const field of immutableConsumerFields(version)) {
      if ((existing[field] ?? "") !== (want[field] ?? "")) {
        throw new ProvisionError(
          `route ${route.name}: consumer ${route.stream}/${durable} has ${field}=${String(existing[field] ?? "(none)")} ` +
            `but config wants ${String(want[field] ?? "(none)")}; it cannot be changed in place on nats-server ${version} ` +
            "(delete the consumer or use a new durable name)",
        );
      }
    }
    if (existing.backoff && existing.backoff.length > 0) {
      throw new ProvisionError(
        `route ${route.name}: consumer ${route.stream}/${durable} has a backoff, which breaks nak(delay); ` +
          "delete the consumer so the bridge can recreate it",
      );
    }
    const info = await jsm.consumers.update(route.stream, durable, {
      description: want.description,
      ack_wait: want.ack_wait,
      max_ack_pending: want.max_ack_pending,
      max_deliver: want.max_deliver,
      ...(want.filter_subject && versionAtLeast(version, 2, 10)
        ? { filter_subject: want.filter_subject }
        : {}),
    });
    logger.info({ route: route.name, stream: route.stream, durable }, "consumer updated");
    return info;
  } catch (cause) {
    if (cause instanceof ProvisionError) throw cause;
    throw new ProvisionError(`route ${route.name}: ${(cause as Error).message}`, { cause });
  }
}

/** Creates or updates one route's durable consumer (also used to bring back a consumer deleted at runtime). */
export function provisionConsumer(
  jsm: JetStreamManager,
  route: RouteConfig,
  version: string,
  logger: pino.Logger,
): Promise<ConsumerInfo> {
  return ensureConsumer(jsm, route, desiredConsumer(route), version, logger);
}

/**
 * Creates or updates every stream (dead-letter stream included) and one durable pull consumer per route.
 * Safe to run again and again: a second run changes nothing.
 */
export async function provision(
  jsm: JetStreamManager,
  config: Config,
  version: string,
  logger: pino.Logger,
): Promise<void> {
  for (const stream of desiredStreams(config)) await ensureStream(jsm, stream, logger);
  for (const route of config.routes) await provisionConsumer(jsm, route, version, logger);
}
