import { JetStreamApiError, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { TimeoutError } from "@nats-io/nats-core";
import type pino from "pino";
import type { Config, RouteConfig } from "./config.ts";
import { openControl } from "./control.ts";
import { connectNats, type NatsHandle } from "./nats.ts";
import { openPresence } from "./presence.ts";
import { provision, provisionConsumer } from "./provision.ts";

/**
 * Socket errors of a server that is not listening yet, or whose DNS name does not exist yet: what a bridge
 * sees when it starts beside its NATS (a pod scheduled with the cluster, a compose file brought up at once).
 */
const NOT_LISTENING = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH"]);

/**
 * JetStream answers that mean "not yet" rather than "no". A cluster electing its meta leader answers
 * 10008 or 10009, or nothing (the request times out); 2.10+ answers 10005 "no suitable peers for
 * placement" to a replicated stream until every node has reported in to the new leader.
 */
const NOT_YET = new Set([10005, 10008, 10009]);

/** The first connection failed because no server is listening (yet); auth, TLS and timeouts are not. */
export function serverNotListening(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && NOT_LISTENING.has(code)) return true;
  }
  return false;
}

/** A JetStream request failed because the system is still coming up, not because of what was asked. */
export function jetStreamNotReady(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (e instanceof JetStreamApiError) return NOT_YET.has(e.code);
    if (e instanceof TimeoutError) return true;
  }
  return false;
}

export interface StartupWaitOptions {
  /** performance.now() after which a failure is final: start-up's start plus `nats.startup_wait`. */
  deadline: number;
  /** The bridge is going away: a failure is final. */
  stopped?: () => boolean;
  logger: pino.Logger;
  /** Which failures are worth another try; any other is thrown at once. */
  retryable: (error: unknown) => boolean;
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 2_000;

/**
 * Runs a start-up step until it succeeds, retrying the failures `retryable` accepts until `deadline` with
 * a growing pause, and logging each. The last error is thrown unchanged, so its type and message still
 * say what was wrong.
 */
export async function untilReady<T>(
  step: string,
  attempt: () => Promise<T>,
  { deadline, logger, retryable, stopped }: StartupWaitOptions,
): Promise<T> {
  let pause = FIRST_RETRY_MS;
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      const left = deadline - performance.now();
      if (!retryable(error) || stopped?.()) throw error;
      if (left <= 0) {
        if (tries > 1)
          logger.error(
            { err: error, step, tries },
            `${step}: still failing after nats.startup_wait, giving up`,
          );
        throw error;
      }
      logger.warn({ err: error, step, tries, retry_in_ms: pause }, `${step}: not ready yet, retrying`);
      await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
      pause = Math.min(pause * 2, MAX_RETRY_MS);
    }
  }
}

/**
 * Brings back a route's consumer deleted under a running bridge, waiting out a JetStream that does not
 * answer yet (a timeout under load, a leader election) for as long as the bridge runs: one failed attempt
 * must not leave the route without its durable. A refusal of the config is final. Resolves to whether the
 * durable exists again.
 */
export async function recreateConsumer(
  jsm: JetStreamManager,
  route: RouteConfig,
  version: string,
  logger: pino.Logger,
  stopped: () => boolean,
): Promise<boolean> {
  try {
    await untilReady(
      `recreating route ${route.name}'s deleted consumer`,
      () => provisionConsumer(jsm, route, version, logger),
      { deadline: Number.POSITIVE_INFINITY, logger, retryable: jetStreamNotReady, stopped },
    );
    return true;
  } catch (error) {
    logger.error({ route: route.name, err: error }, "recreating the deleted consumer failed");
    return false;
  }
}

/**
 * Connects and provisions streams, consumers, the control bucket (operator pauses) and, with a rate-limited
 * route, the presence bucket (replicas sharing its limit), waiting out a NATS that is still starting (no server
 * listening yet, a JetStream cluster without a leader or with nodes not yet reported in) for up to
 * `nats.startup_wait` in all.
 */
export async function connectAndProvision(
  config: Config,
  logger: pino.Logger,
): Promise<NatsHandle & { jsm: JetStreamManager; control: KV; presence: KV | undefined }> {
  const wait = { deadline: performance.now() + config.nats.startup_wait, logger };
  const { nc, version } = await untilReady("connecting to NATS", () => connectNats(config.nats), {
    ...wait,
    retryable: serverNotListening,
  });
  logger.info({ server: nc.getServer(), version }, "connected to nats");
  try {
    const ready = { ...wait, retryable: jetStreamNotReady };
    const jsm = await untilReady("reaching JetStream", () => jetstreamManager(nc), ready);
    await untilReady(
      "provisioning streams and consumers",
      () => provision(jsm, config, version, logger),
      ready,
    );
    const control = await untilReady(
      "opening the control bucket",
      () => openControl(nc, config.control),
      ready,
    );
    const presence = await untilReady(
      "opening the presence bucket",
      () => openPresence(nc, config.control),
      ready,
    ).catch((error: unknown) => {
      // Replicas of a rate-limited route must find one another; otherwise it only informs `jetway status`.
      if (config.routes.some((r) => r.rate_limit)) throw error;
      logger.warn(
        { err: error },
        "opening the presence bucket failed: jetway status will not show this replica",
      );
      return undefined;
    });
    return { nc, version, jsm, control, presence };
  } catch (error) {
    await nc.close();
    throw error;
  }
}
