import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, NatsServer } from "./nats-server.ts";

// Whole-process behaviour: the real CLI as a child process, a real function over HTTP, real nats-server.
const BIN = join(import.meta.dirname, "../bin/jetway.ts");
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NATS_")));
let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let dir: string;

/** A stand-in function: counts calls by ce-id, optionally holding each request for `holdMs`. */
async function startFunction(holdMs: number) {
  const calls = new Map<string, number>();
  const completed = new Set<string>();
  let active = 0;
  const http: Server = createServer((req, res) => {
    const id = String(req.headers["ce-id"]);
    calls.set(id, (calls.get(id) ?? 0) + 1);
    active++;
    req.resume();
    req.on("end", () => {
      setTimeout(() => {
        active--;
        completed.add(id);
        res.writeHead(204).end();
      }, holdMs);
    });
  });
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  const port = (http.address() as AddressInfo).port;
  return {
    calls,
    completed,
    active: () => active,
    url: `http://127.0.0.1:${port}/`,
    close: () => http.close(),
  };
}

async function writeConfig(
  name: string,
  fnUrl: string,
  httpPort: number,
  route: Record<string, unknown> = {},
) {
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    JSON.stringify({
      nats: { servers: [server.url] },
      http: { port: httpPort, host: "127.0.0.1" },
      streams: [{ name, subjects: [`${name.toLowerCase()}.>`] }],
      dead_letter: { stream: `${name}_DLQ`, subject_prefix: `${name.toLowerCase()}_dlq` },
      routes: [{ name: "work", stream: name, url: fnUrl, ack_wait: "2s", concurrency: 32, ...route }],
      shutdown: { grace_period: "10s" },
      log: { level: "warn" },
    }),
  );
  return file;
}

function startBridgeProcess(configFile: string): ChildProcess {
  return spawn(process.execPath, [BIN, "bridge", "--config", configFile], {
    env: cleanEnv,
    stdio: ["ignore", "ignore", "inherit"],
  });
}

/** Polls until `check` holds; the test's own timeout bounds it. */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 50));
}

const ready = (port: number) => () =>
  fetch(`http://127.0.0.1:${port}/readyz`).then(
    (r) => r.status === 200,
    () => false,
  );

beforeAll(async () => {
  server = await NatsServer.start();
  nc = await connect({ servers: server.url });
  jsm = await jetstreamManager(nc);
  dir = await mkdtemp(join(tmpdir(), "jetway-proc-"));
});

afterAll(async () => {
  await nc?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("bridge process", () => {
  it("loses no message when killed -9 mid-stream and restarted (at-least-once)", async () => {
    const fn = await startFunction(2);
    const port = await freePort();
    const name = `CRASH_${Math.random().toString(36).slice(2, 7).toUpperCase()}`;
    const config = await writeConfig(name, fn.url, port);
    let child = startBridgeProcess(config);
    await until(ready(port));
    const js = jetstream(nc);
    const total = 2_000;
    await Promise.all(
      Array.from({ length: total }, (_, i) =>
        js.publish(`${name.toLowerCase()}.job`, `{"i":${i}}`, { msgID: `m-${i}` }),
      ),
    );
    await until(() => fn.calls.size >= 300);
    child.kill("SIGKILL");
    await once(child, "exit");
    const seenAtCrash = fn.calls.size;
    expect(seenAtCrash).toBeLessThan(total);

    child = startBridgeProcess(config);
    await until(() => fn.completed.size === total);
    await until(async () => {
      const info = await jsm.consumers.info(name, "work");
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
    for (let i = 0; i < total; i++) expect(fn.calls.has(`m-${i}`)).toBe(true);
    child.kill("SIGTERM");
    await once(child, "exit");
    fn.close();
  }, 120_000);

  it("on SIGTERM finishes in-flight invocations, acks them, reports not ready, and exits 0", async () => {
    const fn = await startFunction(1_500);
    const port = await freePort();
    const name = `TERM_${Math.random().toString(36).slice(2, 7).toUpperCase()}`;
    const config = await writeConfig(name, fn.url, port, { ack_wait: "30s" });
    const child = startBridgeProcess(config);
    await until(ready(port));
    const js = jetstream(nc);
    const total = 20;
    for (let i = 0; i < total; i++) await js.publish(`${name.toLowerCase()}.job`, "{}", { msgID: `t-${i}` });
    await until(() => fn.active() === total);
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    // In-flight requests hold the process open for ~1.5 s: readyz must say 503 meanwhile.
    let sawNotReady = false;
    await until(async () => {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      sawNotReady = r?.status === 503;
      return r === undefined || sawNotReady;
    });
    expect(sawNotReady).toBe(true);
    const [code] = await exited;
    expect(code).toBe(0);
    expect(fn.completed.size).toBe(total);
    const info = await jsm.consumers.info(name, "work");
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
    expect(info.num_pending).toBe(0);
    expect([...fn.calls.values()].every((n) => n === 1)).toBe(true);
    fn.close();
  }, 60_000);
});
