/**
 * The order-processing system as one bench child: nats-server, a Postgres schema, every function (the dev
 * host) and the bridge, from infra/bridge.dev.yaml (the system-test fixture). Reports the order function's
 * port and the NATS URL, and stops on the driver's "stop".
 */
import { startSystem } from "../infra/dev/system-fixture.ts";
import type { DriverMessage } from "./protocol.ts";
import { send } from "./protocol.ts";

export const PIPELINE_SKU = "sku-bench";

const system = await startSystem({ stock: { [PIPELINE_SKU]: 1_000_000_000 } });
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
});
