import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type ServerType, serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../bridge/nats-server.ts";
import type { DbHandle } from "../../functions/db/index.ts";
import { createTestDb } from "../../functions/db/testing.ts";
import { createGatewayApp } from "../../functions/gateway-sim/app.ts";
import { GatewayState } from "../../functions/gateway-sim/state.ts";
import { createPayment } from "../../functions/payment/app.ts";
import { HEADERS, verifySignature } from "../../functions/sdk/contract.ts";
import { allEvents } from "../../schemas/index.ts";
import { buildInvocation, readEventFile } from "./invoke.ts";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "../..");
const BIN = join(ROOT, "bin/jetway.ts");
const EVENTS = join(import.meta.dirname, "events");
const SECRET = "invoke-test-secret";

let db: DbHandle;
let dir: string;
const servers: ServerType[] = [];
const gateway = new GatewayState();
let paymentUrl: string;

function listen(fetch: (req: Request) => Response | Promise<Response>): Promise<string> {
  return new Promise((resolve) => {
    const server = serve({ fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) =>
      resolve(`http://127.0.0.1:${info.port}`),
    );
    servers.push(server);
  });
}

async function jetway(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  db = await createTestDb();
  dir = await mkdtemp(join(tmpdir(), "jetway-invoke-"));
  const gatewayUrl = await listen(createGatewayApp(gateway).fetch);
  const payment = createPayment({ db: () => db.db }).app;
  const vars = { JETWAY_SECRET: SECRET, GATEWAY_URL: gatewayUrl };
  paymentUrl = `${await listen((req) => payment.fetch(req, vars))}/events`;
});

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await db?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("example event files", () => {
  it("are each valid for the schema their subject names", async () => {
    const files = (await readdir(EVENTS)).filter((f) => f.endsWith(".json"));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const event = readEventFile(await readFile(join(EVENTS, file), "utf8"), file);
      const type = allEvents.find((t) => t.subject === event.subject);
      expect(type, file).toBeDefined();
      expect(type?.schema.safeParse(event.data).success, file).toBe(true);
    }
  });
});

describe("buildInvocation", () => {
  it("builds the bridge's binary-mode CloudEvent with a signature the SDK accepts", async () => {
    const inv = await buildInvocation(
      "payment",
      { subject: "orders.created.v1", data: { a: 1 } },
      { secret: "s" },
    );
    expect(inv.url).toBe("http://127.0.0.1:8792/events");
    expect(inv.headers[HEADERS.ceType]).toBe("orders.created.v1");
    expect(inv.body).toBe('{"a":1}');
    const identity = { id: inv.headers[HEADERS.ceId] ?? "", type: "orders.created.v1" };
    const signature = inv.headers[HEADERS.signature];
    await expect(verifySignature("s", inv.body, signature, { identity })).resolves.toBeUndefined();
    await expect(verifySignature("other", inv.body, signature, { identity })).rejects.toThrow(/match/);
  });

  it("shifts the default URL with a port base and refuses unknown functions without --url", async () => {
    const inv = await buildInvocation("audit", { subject: "x.v1", data: {} }, { portBase: 20000 });
    expect(inv.url).toBe("http://127.0.0.1:20005/events");
    expect(inv.headers[HEADERS.signature]).toBeUndefined();
    await expect(buildInvocation("nope", { subject: "x", data: {} }, {})).rejects.toThrow(/unknown function/);
  });

  it("takes { subject, data } files apart and treats anything else as the data", () => {
    expect(readEventFile('{"subject":"a.v1","data":{"x":1}}', "f")).toEqual({
      subject: "a.v1",
      data: { x: 1 },
    });
    expect(readEventFile('{"x":1}', "f")).toEqual({ subject: undefined, data: { x: 1 } });
    expect(() => readEventFile("{nope", "f.json")).toThrow(/f.json is not JSON/);
  });
});

describe("jetway invoke against a running function", () => {
  it("delivers an event file and prints the status and the events the function would emit", async () => {
    const file = join(EVENTS, "orders.created.v1.json");
    const result = await jetway("invoke", "payment", file, "--url", paymentUrl, "--secret", SECRET);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`POST ${paymentUrl} → 200`);
    const body = JSON.parse(result.stdout.slice(result.stdout.indexOf("\n") + 1)) as {
      events: { subject: string; data: { order_id: string } }[];
    };
    expect(body.events.map((e) => e.subject)).toEqual(["payments.completed.v1"]);
    expect(body.events[0]?.data.order_id).toBe("ord_invoke_1");
    expect(gateway.getStats().by_key_count).toMatchObject({ ord_invoke_1: 1 });
  });

  it("takes the subject from --subject for a data-only file", async () => {
    const event = readEventFile(await readFile(join(EVENTS, "orders.created.v1.declined.json"), "utf8"), "f");
    const file = join(dir, "data-only.json");
    await writeFile(file, JSON.stringify(event.data));
    const result = await jetway(
      "invoke",
      "payment",
      file,
      "--url",
      paymentUrl,
      "--secret",
      SECRET,
      "--subject",
      "orders.created.v1",
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("payments.failed.v1");
    expect(result.stdout).toContain("card_declined");
  });

  it("shows the function's refusal: 401 for a wrong secret, 422 for a subject it does not handle", async () => {
    const file = join(EVENTS, "orders.created.v1.json");
    const forged = await jetway("invoke", "payment", file, "--url", paymentUrl, "--secret", "wrong");
    expect(forged.code).toBe(1);
    expect(forged.stdout).toContain("→ 401");
    expect(forged.stdout).toMatch(/signature/);
    const other = await jetway(
      "invoke",
      "payment",
      join(EVENTS, "payments.failed.v1.json"),
      "--url",
      paymentUrl,
      "--secret",
      SECRET,
    );
    expect(other.code).toBe(1);
    expect(other.stdout).toContain("→ 422");
    expect(other.stdout).toContain("no handler for payments.failed.v1");
  });

  it("exits 2 with usage when the file has no subject and none is given", async () => {
    const file = join(dir, "no-subject.json");
    await writeFile(file, '{"order_id":"x"}');
    const result = await jetway("invoke", "payment", file, "--url", paymentUrl);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("no subject");
    expect(result.stderr).toContain("usage:");
  });

  it("says which URL it could not reach and why, instead of fetch's bare 'fetch failed'", async () => {
    const closed = await freePort();
    const result = await jetway(
      "invoke",
      "payment",
      join(EVENTS, "orders.created.v1.json"),
      "--url",
      `http://127.0.0.1:${closed}/events`,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`cannot reach http://127.0.0.1:${closed}/events (ECONNREFUSED)`);
  });
});
