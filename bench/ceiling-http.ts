/**
 * Ceiling 2: the bridge's HTTP client (bridge/invoker.ts, its undici Pool and header building) alone,
 * driving the null function with `concurrency` requests in flight and no NATS at all.
 * Usage (forked child): node bench/ceiling-http.ts <config.json>, BENCH_EXPECT=<requests>.
 */
import { readFile } from "node:fs/promises";
import type { JsMsg } from "@nats-io/jetstream";
import { parseConfig } from "../bridge/config.ts";
import { Invoker } from "../bridge/invoker.ts";
import { BENCH_SUBJECT } from "./config.ts";
import { envInt, pingBody, SettleRecorder, send } from "./protocol.ts";

const file = process.argv[2];
if (!file) throw new Error("usage: ceiling-http.ts <config.json>");
const config = parseConfig(JSON.parse(await readFile(file, "utf8")), file, {});
const route = config.routes[0];
if (!route) throw new Error("config has no route");
const total = envInt("BENCH_WARMUP") + envInt("BENCH_EXPECT");
const invoker = new Invoker(route);
const recorder = new SettleRecorder(envInt("BENCH_WARMUP"), envInt("BENCH_EXPECT"), () => invoker.destroy());

/** Only what the invoker reads from a message: subject, data, headers, the stream timestamp (ce-time). */
const message = (data: Uint8Array): JsMsg =>
  ({
    subject: BENCH_SUBJECT,
    data,
    headers: undefined,
    info: { timestampNanos: Date.now() * 1_000_000 },
  }) as unknown as JsMsg;

let next = 0;
async function worker(): Promise<void> {
  while (next < total) {
    const seq = ++next;
    const result = await invoker.invoke(message(pingBody()), {
      id: `bench:${seq}`,
      stream: "BENCH",
      seq,
      delivery: 1,
    });
    if (result.status !== 200) {
      send({ type: "error", message: `request ${seq}: ${result.status ?? result.errorMessage}` });
      return;
    }
    recorder.settled(seq);
  }
}

send({ type: "ready" });
await Promise.all(Array.from({ length: route.concurrency }, worker));
