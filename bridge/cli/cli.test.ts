import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DLQ_HEADERS } from "../dead-letter-headers.ts";
import type { DeadLetter, DeadLetterDetail, RedriveResult } from "../dlq.ts";
import { NatsServer } from "../nats-server.ts";
import { openPresence } from "../presence.ts";
import type { RouteStatus } from "./status.ts";

const run = promisify(execFile);
const BIN = join(import.meta.dirname, "../../bin/jetway.ts");
const id = Math.random().toString(36).slice(2, 8).toUpperCase();
let server: NatsServer;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let dir: string;
let configFile: string;

const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NATS_")));

async function jetway(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: cleanEnv });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function deadLetter(route: string, seq: number, body: string): Promise<number> {
  const h = headers();
  h.set("Content-Type", "application/json");
  h.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  h.set(DLQ_HEADERS.route, route);
  h.set(DLQ_HEADERS.subject, `orders_${id}.created`);
  h.set(DLQ_HEADERS.stream, `ORDERS_${id}`);
  h.set(DLQ_HEADERS.seq, String(seq));
  h.set(DLQ_HEADERS.reason, "function answered 422");
  h.set(DLQ_HEADERS.status, "422");
  h.set(DLQ_HEADERS.delivery, "1");
  const ack = await js.publish(`dlq_${id}.${route}`, body, { headers: h, msgID: `dlq:${route}:${seq}` });
  return ack.seq;
}

beforeAll(async () => {
  server = await NatsServer.start();
  nc = await connect({ servers: server.url });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  dir = await mkdtemp(join(tmpdir(), "jetway-cli-"));
  configFile = join(dir, "jetway.yaml");
  await writeFile(
    configFile,
    JSON.stringify({
      nats: { servers: [server.url] },
      streams: [{ name: `ORDERS_${id}`, subjects: [`orders_${id}.>`] }],
      dead_letter: { stream: `DLQ_${id}`, subject_prefix: `dlq_${id}` },
      routes: [{ name: "ship", stream: `ORDERS_${id}`, url: "http://127.0.0.1:9/ship" }],
      log: { level: "warn" },
    }),
  );
});

afterAll(async () => {
  await nc?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("jetway CLI", () => {
  it("exits 2 naming the field for an invalid config, and for unknown commands or flags", async () => {
    const bad = join(dir, "bad.yaml");
    await writeFile(bad, "routes:\n  - name: ship\n    stream: NOPE\n    url: not-a-url\n");
    const result = await jetway("provision", "--config", bad);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("routes[0].url");
    expect(result.stderr).toContain("routes[0].stream");
    expect((await jetway("frobnicate")).code).toBe(2);
    const flag = await jetway("dlq", "list", "--nope", "--config", configFile);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("usage:");
  });

  it("prints a command's usage for --help, and names the config a command needs", async () => {
    const help = await jetway("dlq", "--help");
    expect(help).toMatchObject({ code: 0, stdout: expect.stringContaining("jetway dlq drop (--route R") });
    const none = await jetway("status");
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(
      "--config FILE is required (the bridge's config; `jetway dev` writes .jetway/bridge.dev.yaml)",
    );
  });

  it("provisions streams and consumers, twice without complaint", async () => {
    expect((await jetway("provision", "--config", configFile)).code).toBe(0);
    expect((await jetway("provision", "--config", configFile)).code).toBe(0);
    expect((await jsm.consumers.info(`ORDERS_${id}`, "ship")).config.max_deliver).toBe(-1);
    expect((await jsm.streams.info(`DLQ_${id}`)).config.subjects).toEqual([`dlq_${id}.>`]);
  });

  it("lists, shows and redrives dead letters", async () => {
    const a = await deadLetter("ship", 11, '{"n":1}');
    const b = await deadLetter("ship", 12, '{"n":2}');
    const c = await deadLetter("bill", 13, '{"n":3}');

    const list = await jetway("dlq", "list", "--json", "--config", configFile);
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.stdout) as DeadLetter[];
    expect(rows.map((r) => r.seq)).toEqual([a, b, c]);
    expect(rows[0]).toMatchObject({ route: "ship", subject: `orders_${id}.created`, status: "422" });
    const shipOnly = JSON.parse(
      (await jetway("dlq", "list", "--route", "ship", "--limit", "1", "--json", "--config", configFile))
        .stdout,
    );
    expect((shipOnly as DeadLetter[]).map((r) => r.seq)).toEqual([a]);
    const tableOut = (await jetway("dlq", "list", "--config", configFile)).stdout;
    expect(tableOut).toMatch(/^SEQ\s+ROUTE\s+SUBJECT/);
    expect(tableOut).toContain("function answered 422");

    const show = JSON.parse(
      (await jetway("dlq", "show", String(b), "--json", "--config", configFile)).stdout,
    );
    expect(show as DeadLetterDetail).toMatchObject({ seq: b, body: '{"n":2}', route: "ship" });

    const dry = await jetway(
      "dlq",
      "redrive",
      "--seq",
      `${a}-${c}`,
      "--dry-run",
      "--json",
      "--config",
      configFile,
    );
    expect((JSON.parse(dry.stdout) as RedriveResult[]).map((r) => r.seq)).toEqual([a, b, c]);
    expect((await jsm.streams.info(`DLQ_${id}`)).state.messages).toBe(3);

    const redriven = await jetway("dlq", "redrive", "--route", "ship", "--json", "--config", configFile);
    expect(redriven.code).toBe(0);
    const results = JSON.parse(redriven.stdout) as RedriveResult[];
    expect(results.map((r) => [r.seq, r.duplicate])).toEqual([
      [a, false],
      [b, false],
    ]);
    const replayed = await jsm.streams.getMessage(`ORDERS_${id}`, { seq: results[0]?.newSeq ?? 0 });
    expect(replayed?.string()).toBe('{"n":1}');
    expect(replayed?.subject).toBe(`orders_${id}.created`);
    expect(replayed?.header.get("Nats-Msg-Id")).toBe(`redrive:${a}`);
    expect(replayed?.header.get("Content-Type")).toBe("application/json");
    expect(replayed?.header.get("traceparent")).toContain("0af7651916cd43dd8448eb211c80319c");
    expect(replayed?.header.has(DLQ_HEADERS.reason)).toBe(false);
    const left = JSON.parse(
      (await jetway("dlq", "list", "--json", "--config", configFile)).stdout,
    ) as DeadLetter[];
    expect(left.map((r) => r.seq)).toEqual([c]);

    const missing = await jetway("dlq", "show", String(a), "--config", configFile);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`no dead letter with sequence ${a}`);
  });

  it("drops dead letters for good: a dry run keeps them, and nothing is republished", async () => {
    const a = await deadLetter("drop-me", 21, '{"n":21}');
    const b = await deadLetter("drop-me", 22, '{"n":22}');
    const keep = await deadLetter("keep-me", 23, '{"n":23}');
    const before = (await jsm.streams.info(`ORDERS_${id}`)).state.messages;
    const dry = await jetway("dlq", "drop", "--route", "drop-me", "--dry-run", "--config", configFile);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(
      `seq ${a}: would drop (drop-me orders_${id}.created: function answered 422)`,
    );
    expect(dry.stdout).toContain("2 of 2 selected");
    const listed = async () =>
      (
        JSON.parse((await jetway("dlq", "list", "--json", "--config", configFile)).stdout) as DeadLetter[]
      ).map((r) => r.seq);
    expect(await listed()).toEqual(expect.arrayContaining([a, b, keep]));

    const dropped = await jetway("dlq", "drop", "--seq", `${a}-${b}`, "--json", "--config", configFile);
    expect(dropped.code).toBe(0);
    expect(
      (JSON.parse(dropped.stdout) as { seq: number; route: string }[]).map((r) => [r.seq, r.route]),
    ).toEqual([
      [a, "drop-me"],
      [b, "drop-me"],
    ]);
    const left = await listed();
    expect(left).toContain(keep);
    expect(left).not.toContain(a);
    expect(left).not.toContain(b);
    expect((await jsm.streams.info(`ORDERS_${id}`)).state.messages).toBe(before);
    expect((await jetway("dlq", "drop", "--config", configFile)).code).toBe(2);
  });

  it("status: each route's lag, messages out, redeliveries, dead letters and operator pause", async () => {
    const stream = `ST_${id}`;
    const write = async (file: string, routes: string[]) => {
      await writeFile(
        file,
        JSON.stringify({
          nats: { servers: [server.url] },
          streams: [{ name: stream, subjects: [`st_${id}.>`] }],
          dead_letter: { stream: `STDLQ_${id}`, subject_prefix: `stdlq_${id}` },
          control: { bucket: `st-${id}` },
          routes: routes.map((name) => ({ name, stream, url: `http://127.0.0.1:9/${name}` })),
        }),
      );
      return file;
    };
    expect(
      (await jetway("provision", "--config", await write(join(dir, "alpha.json"), ["alpha"]))).code,
    ).toBe(0);
    // beta is in the config but was never provisioned.
    const both = await write(join(dir, "status.json"), ["alpha", "beta"]);
    for (let n = 0; n < 5; n++) await js.publish(`st_${id}.x`, JSON.stringify({ n }));
    const alpha = await js.consumers.get(stream, "alpha");
    const fetched = [];
    for await (const m of await alpha.fetch({ max_messages: 2, expires: 2_000 })) fetched.push(m);
    fetched[0]?.nak();
    // The server takes acks off a queue of their own, and a pull arriving first would get a new message.
    await new Promise((r) => setTimeout(r, 250));
    // The nak'ed message again, now counted as redelivered; still two out, none acked.
    for await (const m of await alpha.fetch({ max_messages: 1, expires: 2_000 })) fetched.push(m);
    for (const route of ["alpha", "alpha", "beta"]) await js.publish(`stdlq_${id}.${route}`, "{}");
    expect((await jetway("pause", "alpha", "--reason", "gateway maintenance", "--config", both)).code).toBe(
      0,
    );

    const json = await jetway("status", "--json", "--config", both);
    expect(json.code).toBe(0);
    const rows = JSON.parse(json.stdout) as RouteStatus[];
    expect(rows).toEqual([
      {
        route: "alpha",
        stream,
        consumer: { pending: 3, unacked: 2, max_unacked: 128, redelivered: 1, pulls: 0 },
        dead_letters: 2,
        paused: expect.objectContaining({ reason: "gateway maintenance" }),
        replicas: [],
      },
      { route: "beta", stream, dead_letters: 1, replicas: [] },
    ]);
    const table = (await jetway("status", "--config", both)).stdout.split("\n");
    expect(table[0]).toMatch(
      /^route\s+stream\s+replicas\s+pending\s+unacked\s+redelivered\s+pulls\s+dead letters\s+rate limit\s+note$/,
    );
    expect(table[1]).toMatch(
      /^alpha\s+ST_\w+\s+0\s+3\s+2\/128\s+1\s+0\s+2\s+-\s+paused: gateway maintenance$/,
    );
    expect(table[2]).toMatch(
      /^beta\s+ST_\w+\s+0(\s+-){4}\s+1\s+-\s+no consumer: jetway provision creates it$/,
    );
    expect((await jetway("status", "extra", "--config", both)).code).toBe(2);
  });

  it("status: every replica's report of each route, its circuit breaker and the route's rate limit", async () => {
    const stream = `RT_${id}`;
    const control = { bucket: `rt-${id}`, replicas: 1 };
    const file = join(dir, "rate.json");
    await writeFile(
      file,
      JSON.stringify({
        nats: { servers: [server.url] },
        streams: [{ name: stream, subjects: [`rt_${id}.>`] }],
        dead_letter: { stream: `RTDLQ_${id}`, subject_prefix: `rtdlq_${id}` },
        control: { bucket: control.bucket },
        routes: [
          { name: "paced", stream, url: "http://127.0.0.1:9/paced", rate_limit: "90/m" },
          { name: "free", stream, url: "http://127.0.0.1:9/free" },
        ],
      }),
    );
    expect((await jetway("provision", "--config", file)).code).toBe(0);
    const status = async () =>
      JSON.parse((await jetway("status", "--json", "--config", file)).stdout) as RouteStatus[];
    // No replica has run yet: no presence bucket either.
    expect((await status())[0]).toMatchObject({
      route: "paced",
      rate_limit: { per_second: 1.5 },
      replicas: [],
    });
    // What two replicas report (as Presence puts it), one with its circuit open; and one not JSON.
    const kv = await openPresence(nc, control);
    const at = new Date().toISOString();
    const report = (open: boolean, held: number) =>
      JSON.stringify({ at, breaker_open: open, held, in_flight: 1, waiting: 2 });
    await kv.put("paced.replica-a", report(true, 7));
    await kv.put("paced.replica-b", report(false, 0));
    await kv.put("free.replica-a", report(false, 0));
    await kv.put("free.replica-c", "not a report");
    const rows = await status();
    expect(rows[0]?.replicas).toEqual([
      { replica: "replica-a", at, breaker_open: true, held: 7, in_flight: 1, waiting: 2 },
      { replica: "replica-b", at, breaker_open: false, held: 0, in_flight: 1, waiting: 2 },
    ]);
    expect(rows[1]).not.toHaveProperty("rate_limit");
    expect(rows[1]?.replicas.map((r) => r.replica)).toEqual(["replica-a"]);
    const table = (await jetway("status", "--config", file)).stdout.split("\n");
    expect(table[1]).toMatch(
      /^paced\s+RT_\w+\s+2\s.*\s1\.5\/s\s+circuit open on 1 of 2 replicas \(7 held\)$/,
    );
    expect(table[2]).toMatch(/^free\s+RT_\w+\s+1\s.*\s0\s+-\s+-$/);
  });
});
