import { FUNCTION_NAMES } from "../../infra/dev/ports.ts";
import { DEFAULT_DEV_CONFIG, runDev } from "../../infra/dev/runner.ts";
import { type Command, parseFlags, UsageError } from "./common.ts";

function portBase(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65_529)
    throw new UsageError(`--port-base must be a port number, got "${value}"`);
  return n;
}

/** `jetway dev`: the whole system on one machine (see infra/dev/runner.ts). */
export const command: Command = {
  usage:
    "jetway dev [--port-base N] [--only FUNCTION|bridge] [--json] [--config FILE] [--data-dir DIR]\n" +
    "  --port-base N   bridge N, gateway-sim N+1, order N+2, payment N+3, inventory N+4, audit N+5, nats N+6\n" +
    "                  (env JETWAY_PORT_BASE; default: the fixed ports of infra/bridge.dev.yaml)",
  async run(argv) {
    const { values } = parseFlags(argv, {
      "port-base": { type: "string" },
      only: { type: "string" },
      json: { type: "boolean", default: false },
      config: { type: "string", short: "c" },
      "data-dir": { type: "string" },
    });
    const tags = ["bridge", "dev", "functions", ...FUNCTION_NAMES];
    if (values.only !== undefined && !tags.includes(values.only)) {
      throw new UsageError(`--only takes one of ${tags.join(", ")}; got "${values.only}"`);
    }
    return runDev({
      portBase: portBase(values["port-base"] ?? process.env.JETWAY_PORT_BASE),
      only: values.only,
      json: values.json,
      config: values.config ?? DEFAULT_DEV_CONFIG,
      dataDir: values["data-dir"] ?? ".jetway",
      env: process.env,
      colour: process.stdout.isTTY === true && !process.env.NO_COLOR,
    });
  },
};
