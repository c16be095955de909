import { jetstreamManager } from "@nats-io/jetstream";
import { createLogger } from "../logger.ts";
import { connectNats } from "../nats.ts";
import { provision } from "../provision.ts";
import { CONFIG_OPTION, type Command, configFrom, parseFlags } from "./common.ts";

/** `jetway provision --config FILE`: create/update streams and consumers, then exit. */
export const command: Command = {
  usage: "jetway provision --config FILE",
  async run(argv) {
    const { values } = parseFlags(argv, CONFIG_OPTION);
    const config = await configFrom(values.config);
    const logger = createLogger({ level: config.log.level });
    const { nc, version } = await connectNats(config.nats);
    try {
      await provision(await jetstreamManager(nc), config, version, logger);
    } finally {
      await nc.close();
    }
    return 0;
  },
};
