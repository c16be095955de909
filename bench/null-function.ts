/**
 * The null function: a real SDK function (defineFunction + serveNode, the entry every Node function uses)
 * that answers 200 with no events — or, for `bench.emit.v1`, one `bench.out.v1` event per message. It
 * records publish→receive latency from the `t` in each body and hands the samples over at
 * GET /bench/samples (which also resets them). Run as a child process of run.ts.
 */
import { z } from "zod";
import { defineFunction } from "../functions/sdk/define-function.ts";
import { createFunctionLogger } from "../functions/sdk/logger.ts";
import { serveNode } from "../functions/sdk/node.ts";
import { defineEvent } from "../schemas/define.ts";
import { BENCH_EMIT_SUBJECT, BENCH_OUT_SUBJECT } from "./config.ts";
import { nowNs, send } from "./protocol.ts";

/** The bench's event: `t` is the sender's process.hrtime in ns, `pad` brings it to a realistic size. */
export const BenchPing = defineEvent(
  "bench.ping.v1",
  z.object({ t: z.number(), pad: z.string().optional() }),
);

/** The same ping, answered with one event each (the `bridge-events` scenario). */
export const BenchEmit = defineEvent(BENCH_EMIT_SUBJECT, BenchPing.schema);
export const BenchOut = defineEvent(BENCH_OUT_SUBJECT, z.object({ t: z.number() }));

const latencies: number[] = [];
let received = 0;
let batches = 0;
const record = (t: number, at = nowNs()) => {
  received++;
  latencies.push(at - t);
};

const fn = defineFunction({
  name: "bench-null",
  logger: createFunctionLogger("bench-null", { level: "warn" }),
})
  .handle(BenchPing, (event) => record(event.data.t))
  .handleBatch(BenchPing, (events) => {
    batches++;
    const at = nowNs();
    for (const event of events) record(event.data.t, at);
  })
  .handleBatch(BenchEmit, (events, ctx) => {
    batches++;
    const at = nowNs();
    for (const event of events) {
      record(event.data.t, at);
      ctx.emitFor(event.id, BenchOut, { t: event.data.t });
    }
  });

fn.app.get("/bench/samples", (c) => {
  const body = { received, batches, latencies_ns: latencies.splice(0) };
  received = 0;
  batches = 0;
  return c.json(body);
});

const server = serveNode(fn.app, { port: 0, hostname: "127.0.0.1", logger: fn.log, gracePeriodMs: 2_000 });
server.ready.then(({ port }) => send({ type: "ready", port }));
process.on("disconnect", () => void server.close().finally(() => process.exit(0)));
