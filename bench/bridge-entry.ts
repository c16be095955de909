/**
 * The bridge as the bench runs it: `startBridge` (the same wiring as production) from a config file,
 * plus a listener on its lifecycle events that reports progress and ack times to the driver.
 * Usage (as a forked child): node bench/bridge-entry.ts <config.json>, BENCH_EXPECT=<messages>.
 */
import { readFile } from "node:fs/promises";
import { parseConfig } from "../bridge/config.ts";
import { startBridge } from "../bridge/main.ts";
import { type AllocationProfile, startAllocationProfile } from "./alloc-prof.ts";
import { envInt, SettleRecorder, send } from "./protocol.ts";

const file = process.argv[2];
if (!file) throw new Error("usage: bridge-entry.ts <config.json>");
const config = parseConfig(JSON.parse(await readFile(file, "utf8")), file, {});
const bridge = await startBridge(config);
// Subscribing after startBridge resolves misses nothing: an outcome needs network I/O (pull, then HTTP),
// and only microtasks run between the consumers binding and this line.
let allocations: Promise<AllocationProfile> | undefined;
const recorder = new SettleRecorder(
  envInt("BENCH_WARMUP"),
  envInt("BENCH_EXPECT"),
  async () => {
    await (await allocations)?.stop();
    await bridge.shutdown();
  },
  process.env.BENCH_KEEP_TIMES !== "0",
);
// --alloc-prof: what the bridge allocates in the measured window, from its first settle to the stop.
const allocDir = process.env.BENCH_ALLOC_PROF;
if (allocDir) recorder.whenWarm(() => (allocations = startAllocationProfile(allocDir)));
// invoke:outcome fires right after msg.ack() is written to the connection: the bridge's own ack moment.
bridge.events.on("invoke:outcome", (event) => {
  if (event.outcome === "ack") recorder.settled(event.delivery.seq);
});
send({ type: "ready", port: bridge.port });
