import { readFile } from "node:fs/promises";
import { credsAuthenticator, type NatsConnection, type Status } from "@nats-io/nats-core";
import { type NodeConnectionOptions, connect as natsConnect } from "@nats-io/transport-node";
import type pino from "pino";
import type { NatsConfig } from "./config.ts";

/** The bridge could not reach NATS at start-up (later outages are reconnected, not thrown). */
export class NatsConnectError extends Error {
  override name = "NatsConnectError";
}

export interface NatsHandle {
  nc: NatsConnection;
  /** Server version string of the server we first connected to, e.g. "2.10.22". */
  version: string;
}

/** Connection options from config: auth, TLS, and reconnect forever. */
export async function connectionOptions(config: NatsConfig): Promise<NodeConnectionOptions> {
  const opts: NodeConnectionOptions = {
    servers: config.servers,
    name: config.name,
    // A bridge outlives NATS restarts and network blips: never give up reconnecting.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    reconnectJitter: 500,
    reconnectJitterTLS: 1_000,
    pingInterval: config.ping_interval,
    maxPingOut: config.max_pings_out,
    noAsyncTraces: true,
    timeout: config.connect_timeout,
  };
  if (config.user !== undefined) {
    opts.user = config.user;
    if (config.pass !== undefined) opts.pass = config.pass;
  }
  if (config.token !== undefined) opts.token = config.token;
  if (config.creds_file) {
    let creds: Uint8Array;
    try {
      creds = await readFile(config.creds_file);
    } catch (cause) {
      throw new NatsConnectError(`cannot read creds_file ${config.creds_file}`, { cause });
    }
    opts.authenticator = credsAuthenticator(creds);
  }
  if (config.tls) {
    const tls = config.tls;
    opts.tls = {
      handshakeFirst: tls.handshake_first,
      ...(tls.ca_file ? { caFile: tls.ca_file } : {}),
      ...(tls.cert_file ? { certFile: tls.cert_file } : {}),
      ...(tls.key_file ? { keyFile: tls.key_file } : {}),
    };
  }
  return opts;
}

/** Connects to NATS; the first connection must succeed, later losses reconnect forever. */
export async function connectNats(config: NatsConfig): Promise<NatsHandle> {
  const opts = await connectionOptions(config);
  let nc: NatsConnection;
  try {
    nc = await natsConnect(opts);
  } catch (cause) {
    // Under TLS 1.3 a server that refuses the client's certificate closes the connection without a word,
    // and the client only times out: say where to look.
    const hint =
      config.tls && (cause as Error).name === "TimeoutError"
        ? " (with TLS, a server that refuses the client certificate only closes the connection: check nats.tls.cert_file and key_file against the server's CA)"
        : "";
    throw new NatsConnectError(
      `cannot connect to NATS at ${config.servers.join(", ")}: ${(cause as Error).message}${hint}`,
      { cause },
    );
  }
  return { nc, version: nc.info?.version ?? "0.0.0" };
}

/** Tracks whether the connection is currently up, from nc.status(). */
export interface ConnectionState {
  readonly connected: boolean;
}

/**
 * Logs connection status changes in a side loop (notifications are not errors) and keeps a live
 * "connected" flag for readiness and ingress. Ends when the connection closes.
 */
export function watchStatus(nc: NatsConnection, logger: pino.Logger): ConnectionState {
  const state = { connected: !nc.isClosed() };
  void (async () => {
    for await (const s of nc.status()) logStatus(s, state, logger);
  })().catch((error: unknown) => logger.warn({ err: error }, "nats status loop ended"));
  void nc.closed().then(() => {
    state.connected = false;
  });
  return state;
}

function logStatus(s: Status, state: { connected: boolean }, logger: pino.Logger): void {
  switch (s.type) {
    case "disconnect":
      state.connected = false;
      logger.warn({ server: s.server }, "nats disconnected");
      return;
    case "reconnect":
      state.connected = true;
      logger.info({ server: s.server }, "nats reconnected");
      return;
    case "reconnecting":
      logger.debug("nats reconnecting");
      return;
    case "ldm":
      logger.warn({ server: s.server }, "nats server entering lame duck mode");
      return;
    case "error":
      logger.error({ err: s.error }, "nats async error");
      return;
    case "staleConnection":
      logger.warn("nats connection stale: the server stopped answering pings, moving to another");
      return;
    case "slowConsumer":
      logger.warn({ subject: s.sub.getSubject(), pending: s.pending }, "nats slow consumer");
      return;
    case "close":
      state.connected = false;
      logger.info("nats connection closed");
      return;
    default:
      logger.debug({ status: s.type }, "nats status");
  }
}
