import { createLogger } from "../logger.ts";
import { startBridge } from "../main.ts";
import { handleSignals } from "../shutdown.ts";
import { CONFIG_OPTION, type Command, configFrom, parseFlags } from "./common.ts";

/** `jetway bridge --config FILE`: runs until SIGTERM/SIGINT. */
export const command: Command = {
  usage: "jetway bridge --config FILE",
  async run(argv) {
    const { values } = parseFlags(argv, CONFIG_OPTION);
    const config = await configFrom(values.config);
    const logger = createLogger({ level: config.log.level });
    // A stray rejection from a client library during a NATS blip must not take the whole bridge down.
    process.on("unhandledRejection", (reason) => logger.error({ err: reason }, "unhandled rejection"));
    const bridge = await startBridge(config, { logger });
    // The exit happens in the signal handler, after the graceful stop; until then keep running.
    return new Promise<number>(() => {
      handleSignals({ logger, onShutdown: () => bridge.shutdown() });
    });
  },
};
