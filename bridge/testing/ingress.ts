import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { parseConfig } from "../config.ts";
import { BridgeEvents } from "../events.ts";
import { createHttpApp, type RunningHttpServer, startHttpServer } from "../http.ts";
import { JetStreamPublisher } from "../js-publisher.ts";
import { createLogger } from "../logger.ts";
import { BridgeMetrics } from "../metrics.ts";

/**
 * The bridge's real HTTP server (ingress, health, metrics) on a free port of 127.0.0.1, publishing over
 * `nc`: what code that publishes through the ingress is tested against. `http` is the config's section.
 */
export async function startIngress(
  nc: NatsConnection,
  http: Record<string, unknown> = {},
): Promise<RunningHttpServer & { url: string }> {
  const logger = createLogger({ level: "silent" });
  const config = parseConfig({ http }, "test", {});
  const app = createHttpApp({
    ingress: {
      nc,
      store: new JetStreamPublisher(nc, jetstream(nc)),
      http: config.http,
      deadLetterPrefix: config.dead_letter.subject_prefix,
      connected: () => true,
      logger,
      publishTimeoutMs: 2_000,
    },
    metrics: new BridgeMetrics(new BridgeEvents(), { defaultMetrics: false }),
    readiness: () => ({ ready: true, reasons: [] }),
    logger,
  });
  const running = await startHttpServer(app, 0, "127.0.0.1");
  return Object.assign(running, { url: `http://127.0.0.1:${running.port}` });
}
