/**
 * Ceiling 1: consume + ack in-process, no HTTP. Same connection options, durable consumer (provisioned by
 * the driver from the same config) and consume() settings as the bridge's RouteConsumer.
 * Usage (forked child): node bench/ceiling-js.ts <config.json>, BENCH_EXPECT=<messages>.
 */
import { readFile } from "node:fs/promises";
import { jetstream } from "@nats-io/jetstream";
import { durableName, parseConfig } from "../bridge/config.ts";
import { connectNats } from "../bridge/nats.ts";
import { envInt, SettleRecorder, send } from "./protocol.ts";

const file = process.argv[2];
if (!file) throw new Error("usage: ceiling-js.ts <config.json>");
const config = parseConfig(JSON.parse(await readFile(file, "utf8")), file, {});
const route = config.routes[0];
if (!route) throw new Error("config has no route");
const { nc } = await connectNats(config.nats);
const consumer = await jetstream(nc).consumers.get(route.stream, durableName(route));
const recorder = new SettleRecorder(envInt("BENCH_WARMUP"), envInt("BENCH_EXPECT"), async () => {
  await messages.close();
  await nc.drain();
});
const messages = await consumer.consume({
  max_messages: route.concurrency,
  // Mirrors PULL_EXPIRES_MS in bridge/consumer.ts (short pulls for failover).
  expires: 5_000,
  callback: (msg) => {
    msg.ack();
    recorder.settled(msg.seq);
  },
});
send({ type: "ready" });
