import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "./config.ts";
import { listDeadLetters, redrive } from "./dlq.ts";
import { createLogger } from "./logger.ts";
import { type RunningBridge, startBridge } from "./main.ts";
import { NatsServer } from "./nats-server.ts";

// The in-process bridge, wired exactly as `jetway bridge` wires it, against a real function and nats-server.
const id = Math.random().toString(36).slice(2, 7).toUpperCase();
const subject = `jobs_${id}`;
let server: NatsServer;
let fn: Server;
let bridge: RunningBridge;
/** ce-ids the function has acked; ids listed in `reject` get a 422 (dead letter) until removed. */
const acked: string[] = [];
const reject = new Set<string>();
/** While set, the function answers 503 to everything: an outage. */
let down = false;

beforeAll(async () => {
  server = await NatsServer.start();
  fn = createServer((req, res) => {
    const ceId = String(req.headers["ce-id"]);
    req.resume();
    req.on("end", () => {
      if (down) {
        res.writeHead(503).end();
        return;
      }
      if (reject.has(ceId)) {
        res.writeHead(422, { "content-type": "application/json" }).end('{"error":"bad order"}');
        return;
      }
      acked.push(ceId);
      res.writeHead(204).end();
    });
  });
  fn.listen(0, "127.0.0.1");
  await once(fn, "listening");
  const config = parseConfig(
    {
      nats: { servers: [server.url] },
      http: { port: 0, host: "127.0.0.1" },
      streams: [{ name: `JOBS_${id}`, subjects: [`${subject}.>`] }],
      dead_letter: { stream: `DLQ_${id}`, subject_prefix: `dlq_${id}` },
      routes: [
        {
          name: "work",
          stream: `JOBS_${id}`,
          url: `http://127.0.0.1:${(fn.address() as AddressInfo).port}/`,
          backoff: ["20ms"],
          circuit_breaker: { failures: 3, open_for: "100ms", max_open: "200ms" },
        },
      ],
      shutdown: { grace_period: "5s" },
    },
    "test",
    {},
  );
  bridge = await startBridge(config, { logger: createLogger({ level: "silent" }) });
});

afterAll(async () => {
  await bridge?.shutdown();
  fn?.close();
  await server?.stop();
});

const base = () => `http://127.0.0.1:${bridge.port}`;
const until = async (check: () => boolean | Promise<boolean>) => {
  while (!(await check())) await new Promise((r) => setTimeout(r, 25));
};
const publish = (key: string, body = "{}") =>
  fetch(`${base()}/v1/publish/${subject}.created`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", "idempotency-key": key },
  });

describe("in-process bridge", () => {
  it("is ready once consumers are bound, delivers ingress messages and counts them in /metrics", async () => {
    await until(() => bridge.readiness().ready);
    expect((await fetch(`${base()}/readyz`)).status).toBe(200);
    expect((await publish("a-1")).status).toBe(202);
    await until(() => acked.includes("a-1"));
    const text = await (await fetch(`${base()}/metrics`)).text();
    expect(text).toContain('jetway_invocations_total{route="work",outcome="ack",status="204"} 1');
    expect(text).toContain('jetway_ingress_publish_total{status="202"} 1');
    expect(text).toMatch(/jetway_consumer_pending\{route="work"\} 0/);
    expect(text).toContain("process_cpu_user_seconds_total");
  });

  it("dead-letters a rejected message, and redrive delivers it again", async () => {
    reject.add("bad-1");
    expect((await publish("bad-1", '{"order":1}')).status).toBe(202);
    const js = jetstream(bridge.nc);
    const jsm = await jetstreamManager(bridge.nc);
    const dl = bridge.config.dead_letter;
    await until(async () => (await listDeadLetters(js, jsm, dl)).length === 1);
    const [letter] = await listDeadLetters(js, jsm, dl, { route: "work" });
    expect(letter).toMatchObject({ route: "work", subject: `${subject}.created`, status: "422" });
    expect(await (await fetch(`${base()}/metrics`)).text()).toContain(
      'jetway_dead_letters_total{route="work"} 1',
    );

    reject.delete("bad-1");
    const results = await redrive(js, jsm, dl, { route: "work" });
    expect(results).toHaveLength(1);
    // The redriven copy carries Nats-Msg-Id redrive:<dlq seq>, which becomes its ce-id.
    await until(() => acked.includes(`redrive:${letter?.seq}`));
    expect(await listDeadLetters(js, jsm, dl)).toEqual([]);
  });

  it("pauses the route while its function is down, stays ready, shows it in /metrics, and resumes", async () => {
    down = true;
    for (const key of ["down-1", "down-2", "down-3", "down-4"]) expect((await publish(key)).status).toBe(202);
    const metric = async (name: string) => {
      const text = await (await fetch(`${base()}/metrics`)).text();
      return Number(text.match(new RegExp(`^${name}\\{route="work"\\} (\\d+)$`, "m"))?.[1]);
    };
    await until(async () => (await metric("jetway_route_paused")) === 1);
    expect(await metric("jetway_circuit_opened_total")).toBeGreaterThanOrEqual(1);
    expect(await metric("jetway_route_held")).toBeGreaterThanOrEqual(1);
    // The bridge is fine and its ingress must keep taking events: a paused route does not fail readiness.
    const ready = await fetch(`${base()}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, reasons: [], paused: ["work"] });
    expect((await publish("down-5")).status).toBe(202);

    down = false;
    await until(() => ["down-1", "down-2", "down-3", "down-4", "down-5"].every((k) => acked.includes(k)));
    expect(await metric("jetway_route_paused")).toBe(0);
    expect(await metric("jetway_dead_letters_total")).toBe(1);
  });

  // Delivery resumes on the pull loop's next request (up to its expiry, ~30 s), too slow to wait for here.
  it("recreates a durable consumer deleted under it", async () => {
    const jsm = await jetstreamManager(bridge.nc);
    await jsm.consumers.delete(`JOBS_${id}`, "work");
    await until(async () =>
      jsm.consumers.info(`JOBS_${id}`, "work").then(
        () => true,
        () => false,
      ),
    );
    const info = await jsm.consumers.info(`JOBS_${id}`, "work");
    expect(info.config).toMatchObject({ ack_policy: "explicit", max_deliver: -1 });
  });

  it("survives a nats-server restart and keeps delivering", async () => {
    await server.restart();
    await until(() => bridge.readiness().ready);
    await until(async () => (await publish("after-restart")).status === 202);
    await until(() => acked.includes("after-restart"));
  });

  it("reports not ready with a reason once shutting down", async () => {
    await bridge.shutdown();
    expect(bridge.readiness()).toMatchObject({
      ready: false,
      reasons: expect.arrayContaining(["shutting down"]),
    });
  });
});
