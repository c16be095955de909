import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "./config.ts";
import { PauseWatcher } from "./control.ts";
import { createLogger } from "./logger.ts";
import { type RunningBridge, startBridge } from "./main.ts";
import { NatsServer } from "./nats-server.ts";
import { HttpFunction, waitFor } from "./testing/http-function.ts";
import { pauseRecorder } from "./testing/pauses.ts";

// Operator pauses end to end: the real CLI writes the control bucket, and every replica of a real bridge
// (in-process, wired as `jetway bridge` wires it) follows it.
const run = promisify(execFile);
const BIN = join(import.meta.dirname, "../bin/jetway.ts");
const id = Math.random().toString(36).slice(2, 7).toUpperCase();
const subject = `work_${id}`;
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NATS_")));
let server: NatsServer;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let fn: HttpFunction;
/** The batch route's function: answers every batch with no failures. */
let batchFn: HttpFunction;
let dir: string;
let configFile: string;
let raw: Record<string, unknown>;
const bridges: RunningBridge[] = [];

async function jetway(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args, "--config", configFile], {
      env: cleanEnv,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function replica(): Promise<RunningBridge> {
  const bridge = await startBridge(parseConfig(raw, "test", {}), {
    logger: createLogger({ level: "silent" }),
  });
  bridges.push(bridge);
  return bridge;
}

const delivered = () => new Set(fn.requests.map((r) => Number(r.headers["x-jetway-seq"])));
/** Stream sequences the batch route's function has received. */
const batchedSeqs = () =>
  new Set(
    batchFn.requests.flatMap((r) =>
      (JSON.parse(r.body.toString()) as { jetwayseq: number }[]).map((e) => e.jetwayseq),
    ),
  );

async function publish(n: number): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) seqs.push((await js.publish(`${subject}.job`, JSON.stringify({ i }))).seq);
  return seqs;
}

async function consumerState() {
  const info = await jsm.consumers.info(`WORK_${id}`, "work");
  return { pending: info.num_pending, unacked: info.num_ack_pending, redelivered: info.num_redelivered };
}

beforeAll(async () => {
  server = await NatsServer.start();
  nc = await connect({ servers: server.url });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  fn = await HttpFunction.start();
  batchFn = await HttpFunction.start(() => ({ status: 200, body: { failures: [] } }));
  dir = await mkdtemp(join(tmpdir(), "jetway-control-"));
  configFile = join(dir, "jetway.yaml");
  raw = {
    nats: { servers: [server.url] },
    http: { port: 0, host: "127.0.0.1" },
    streams: [{ name: `WORK_${id}`, subjects: [`${subject}.>`] }],
    dead_letter: { stream: `DLQ_${id}`, subject_prefix: `dlq_${id}` },
    control: { bucket: `control-${id}` },
    routes: [
      { name: "work", stream: `WORK_${id}`, url: fn.url, concurrency: 4, ack_wait: "2s" },
      { name: "batched", stream: `WORK_${id}`, url: batchFn.url, batch: { size: 10, max_wait: "5ms" } },
    ],
    log: { level: "warn" },
    shutdown: { grace_period: "2s" },
  };
  await writeFile(configFile, JSON.stringify(raw));
  await replica();
  await replica();
});

afterAll(async () => {
  for (const bridge of bridges) await bridge.shutdown();
  await fn?.close();
  await batchFn?.close();
  await nc?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("jetway pause / resume", () => {
  it("pauses a route on every replica, a replica started meanwhile too; resume delivers all, once each", async () => {
    const paused = await jetway("pause", "work", "--reason", "gateway maintenance");
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toMatch(/^work: paused \(since .+\): gateway maintenance/);
    for (const bridge of bridges) {
      await waitFor("replica paused", () => bridge.readiness().paused?.includes("work"));
      expect(bridge.readiness()).toMatchObject({ ready: true, paused_by: { work: "gateway maintenance" } });
    }
    const before = fn.requests.length;
    const seqs = await publish(40);
    const late = await replica();
    expect(late.readiness().paused_by).toEqual({ work: "gateway maintenance" });
    // Held, kept alive past ack_wait (2 s), never sent: nothing reaches the function, nothing is redelivered.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(fn.requests.length).toBe(before);
    expect(await consumerState()).toMatchObject({ redelivered: 0 });

    const metrics = await (await fetch(`http://127.0.0.1:${bridges[0]?.port}/metrics`)).text();
    expect(metrics).toContain('jetway_route_paused_by_operator{route="work"} 1');
    expect(metrics).toContain('jetway_route_paused{route="work"} 0');
    expect(metrics).toMatch(/jetway_route_held\{route="work"\} [1-8]\n/);

    const listed = await jetway("pause", "--json");
    expect(JSON.parse(listed.stdout)).toMatchObject({
      work: { reason: "gateway maintenance", at: expect.any(String) },
    });

    const resumed = await jetway("resume", "work");
    expect(resumed.stdout.trim()).toBe("work: resumed");
    await waitFor("every message delivered", () => seqs.every((s) => delivered().has(s)));
    await waitFor("every message acked", async () => (await consumerState()).unacked === 0);
    expect(fn.requests.length - before).toBe(seqs.length);
    for (const bridge of bridges) expect(bridge.readiness().paused).toEqual([]);
    expect((await jetway("pause")).stdout.trim()).toBe("no route is paused");
    expect((await jetway("resume", "work")).stdout.trim()).toBe("work: was not paused");
  });

  it("pauses a batch route alone: the other route of the stream goes on, and resume sends what was held", async () => {
    expect((await jetway("pause", "batched")).code).toBe(0);
    await waitFor("paused", () => bridges.every((b) => b.readiness().paused?.includes("batched")));
    const before = batchFn.requests.length;
    const seqs = await publish(30);
    await waitFor("the unpaused route delivers", () => seqs.every((s) => delivered().has(s)));
    expect(batchFn.requests.length).toBe(before);
    await jetway("resume", "batched");
    await waitFor("the batch route delivers", () => seqs.every((s) => batchedSeqs().has(s)));
  });

  it("ends a pause given --for by itself", async () => {
    const paused = await jetway("pause", "work", "--for", "1500ms");
    expect(paused.stdout).toMatch(/work: paused until \S+ \(since/);
    await waitFor("paused", () => bridges.every((b) => b.readiness().paused?.includes("work")));
    const before = fn.requests.length;
    const seqs = await publish(5);
    await new Promise((r) => setTimeout(r, 300));
    expect(fn.requests.length).toBe(before);
    await waitFor("delivered once the pause ran out", () => seqs.every((s) => delivered().has(s)), 5_000);
    expect(bridges.every((b) => !b.readiness().paused?.includes("work"))).toBe(true);
    expect((await jetway("pause")).stdout).toMatch(
      /^work: not paused \(a pause ended at \S+\): paused by an operator$/m,
    );
    await jetway("resume", "work");
  });

  it("pauses on an unreadable record rather than ignore it, and resumes when it is deleted", async () => {
    const kv = await new Kvm(nc).open(`control-${id}`);
    await kv.put("pause.work", "not json");
    await waitFor("paused", () => bridges.every((b) => b.readiness().paused?.includes("work")));
    expect(bridges[0]?.readiness().paused_by?.work).toMatch(/unreadable pause record \(not JSON\)/);
    await kv.delete("pause.work");
    await waitFor("resumed", () => bridges.every((b) => !b.readiness().paused?.includes("work")));
  });

  it("PauseWatcher.start() resolves with the bucket's pauses applied, so a replica binds already paused", async () => {
    const kv = await new Kvm(nc).open(`control-${id}`);
    await kv.put("pause.work", JSON.stringify({ reason: "before start", at: new Date().toISOString() }));
    const { calls, routes } = pauseRecorder("work");
    const watcher = new PauseWatcher(kv, routes, createLogger({ level: "silent" }));
    try {
      await watcher.start();
      expect(calls).toEqual(["before start"]);
      await kv.delete("pause.work");
      await waitFor("resumed", () => calls.at(-1) === "resumed");
    } finally {
      watcher.stop();
    }
  });

  it("still follows the bucket after a nats-server restart", async () => {
    await server.restart();
    await waitFor("every replica ready again", () => bridges.every((b) => b.readiness().ready), 20_000);
    await waitFor(
      "the CLI gets through",
      async () => (await jetway("pause", "work", "--reason", "after restart")).code === 0,
      20_000,
    );
    await waitFor(
      "every replica paused",
      () => bridges.every((b) => b.readiness().paused_by?.work === "after restart"),
      20_000,
    );
    await jetway("resume", "work");
    await waitFor(
      "every replica resumed",
      () => bridges.every((b) => !b.readiness().paused?.includes("work")),
      20_000,
    );
  });

  it("reads the keys as well as watching them: a change the watch never brings applies within poll_interval", async () => {
    const kv = await new Kvm(nc).open(`control-${id}`);
    // Right after the restart above, a loaded server may take a while to serve the bucket again.
    await waitFor(
      "the bucket to answer",
      () =>
        kv.get("pause.work").then(
          () => true,
          () => false,
        ),
      30_000,
    );
    // The watch is deaf, as it was seen for ~60 s after the loss of the bucket's leader node (cluster.test.ts).
    const deaf = Object.assign(Object.create(kv) as typeof kv, {
      watch: async () => ({ stop() {}, async *[Symbol.asyncIterator]() {} }),
    });
    const { calls, routes } = pauseRecorder("work");
    const watcher = new PauseWatcher(deaf, routes, createLogger({ level: "silent" }), 100);
    try {
      await watcher.start();
      await kv.put("pause.work", JSON.stringify({ reason: "polled", at: new Date().toISOString() }));
      await waitFor("the pause read", () => calls.at(-1) === "polled", 10_000);
      await kv.delete("pause.work");
      await waitFor("the resume read", () => calls.at(-1) === "resumed", 10_000);
    } finally {
      watcher.stop();
    }
  });

  it("applies entries in revision order: a stale read never undoes a newer change; a recreated bucket's do", async () => {
    const t0 = Date.now();
    type Entry = { revision: number; created: Date; operation: "PUT" | "DEL"; value: Uint8Array };
    /** A pause written `atMs` after t0. */
    const pauseAt = (revision: number, atMs: number): Entry => ({
      revision,
      created: new Date(t0 + atMs),
      operation: "PUT",
      value: new TextEncoder().encode(
        JSON.stringify({ reason: `rev ${revision}`, at: "2026-01-01T00:00:00Z" }),
      ),
    });
    let latest: Entry = pauseAt(4, 0);
    let push: ((entry: unknown) => void) | undefined;
    const fake = {
      get: async () => latest,
      watch: async () => ({
        stop() {},
        async *[Symbol.asyncIterator]() {
          for (;;) yield await new Promise((resolve) => (push = resolve));
        },
      }),
    } as unknown as ConstructorParameters<typeof PauseWatcher>[0];
    const { calls, routes } = pauseRecorder("work");
    const watcher = new PauseWatcher(fake, routes, createLogger({ level: "silent" }), 50);
    try {
      await watcher.start();
      expect(calls).toEqual(["rev 4"]);
      // The watch brings a resume at revision 5, while reads still see revision 4 (a lagging replica).
      await waitFor("the watch to listen", () => push !== undefined);
      push?.({
        key: "pause.work",
        revision: 5,
        created: new Date(t0 + 10),
        operation: "DEL",
        value: new Uint8Array(),
      });
      await waitFor("the resume", () => calls.at(-1) === "resumed", 10_000);
      await new Promise((r) => setTimeout(r, 200));
      expect(calls).toEqual(["rev 4", "resumed"]);
      latest = pauseAt(6, 20);
      await waitFor("a newer pause read", () => calls.at(-1) === "rev 6", 10_000);
      // The bucket deleted and created again: revision 1, written a minute later, is the newest.
      latest = pauseAt(1, 60_000);
      await waitFor("the recreated bucket's pause", () => calls.at(-1) === "rev 1", 10_000);
    } finally {
      watcher.stop();
    }
  });

  it("names the config's routes for an unknown one, and a bad --for, exiting 2", async () => {
    const unknown = await jetway("pause", "shipping");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no route "shipping" in the config (routes: work, batched)');
    const badFor = await jetway("pause", "work", "--for", "soon");
    expect(badFor.code).toBe(2);
    expect(badFor.stderr).toContain("--for must be a duration");
    expect((await jetway("resume")).code).toBe(2);
  });
});
