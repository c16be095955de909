import { createLogger } from "../logger.ts";
import { connectAndProvision } from "../startup.ts";
import { CONFIG_OPTION, type Command, configFrom, parseFlags } from "./common.ts";

/** `jetway provision --config FILE`: create/update streams and consumers, then exit. */
export const command: Command = {
  usage: "jetway provision --config FILE",
  async run(argv) {
    const { values } = parseFlags(argv, CONFIG_OPTION);
    const config = await configFrom(values.config);
    const logger = createLogger({ level: config.log.level });
    const { nc } = await connectAndProvision(config, logger);
    await nc.close();
    return 0;
  },
};
