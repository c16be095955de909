/**
 * The order-processing system as the bench runs it, shaped like `jetway dev`: this child holds nats-server,
 * a Postgres schema and every function (the dev host); the bridge runs in a process of its own (the driver
 * starts `jetway bridge` with the config written here), so each side's CPU is read on its own. Reports the
 * order function's port, the NATS URL and the bridge's config, and stops on the driver's "stop".
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startSystemParts } from "../infra/dev/system-fixture.ts";
import type { DriverMessage } from "./protocol.ts";
import { send } from "./protocol.ts";

export const PIPELINE_SKU = "sku-bench";

const system = await startSystemParts({ stock: { [PIPELINE_SKU]: 1_000_000_000 } });
const configFile = join(system.dataDir, "bridge.json");
await writeFile(configFile, JSON.stringify(system.bridgeRaw));
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void system.close().finally(() => process.exit(0));
};
process.on("message", (message: DriverMessage) => {
  if (message.type === "stop") stop();
});
process.on("disconnect", stop);
send({
  type: "ready",
  port: system.ports.functions.order,
  natsUrl: system.nats.url,
  natsPid: system.nats.pid,
  bridge: { configFile, env: system.bridgeEnv, port: system.ports.bridge },
  gatewayUrl: `http://127.0.0.1:${system.ports.functions["gateway-sim"]}`,
});
