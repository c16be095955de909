/**
 * The order-processing system's shared parts as the bench runs them: this child holds nats-server and a
 * Postgres schema (stock seeded) and writes the bridge's config; the driver starts every function from its
 * own Node entry (`functions/<name>/node.ts`, one process each, as deployed) and the bridge (`jetway
 * bridge`), so each one's CPU is read on its own. Reports the ports, each function's env, the NATS URL and
 * the bridge's config, and stops on the driver's "stop".
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { prepareSystem } from "../infra/dev/system-fixture.ts";
import type { DriverMessage, FunctionProcess } from "./protocol.ts";
import { send } from "./protocol.ts";

export const PIPELINE_SKU = "sku-bench";

const system = await prepareSystem({ stock: { [PIPELINE_SKU]: 1_000_000_000 } });
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
if (system.db.driver !== "postgres") {
  send({ type: "error", message: "the pipeline needs PostgreSQL (DATABASE_URL or 127.0.0.1:5432)" });
  stop();
} else {
  const configFile = join(system.dataDir, "bridge.json");
  await writeFile(configFile, JSON.stringify(system.bridgeRaw));
  const database = {
    DATABASE_URL: system.db.url,
    ...(system.db.schema ? { DATABASE_SCHEMA: system.db.schema } : {}),
  };
  const functions: FunctionProcess[] = Object.entries(system.ports.functions).map(([name, port]) => ({
    name,
    script: `../functions/${name}/node.ts`,
    port,
    // The functions log at info, as deployed (the system fixture quiets them for the test suites).
    env: { ...system.vars, ...database, PORT: String(port), JETWAY_LOG_LEVEL: "info" },
  }));
  send({
    type: "ready",
    port: system.ports.functions.order,
    natsUrl: system.nats.url,
    natsPid: system.nats.pid,
    bridge: { configFile, env: system.bridgeEnv, port: system.ports.bridge },
    gatewayUrl: `http://127.0.0.1:${system.ports.functions["gateway-sim"]}`,
    auditDir: system.auditDir,
    functions,
  });
}
