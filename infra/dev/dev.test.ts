import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isListening, NatsServer } from "../../bridge/nats-server.ts";

/*
 * Proves the README's run command: `jetway dev` as a child process (PGlite, its own data dir), the
 * printed curl example run through a shell, then SIGTERM stopping everything it started.
 */

const run = promisify(execFile);
const BIN = join(import.meta.dirname, "../../bin/jetway.ts");
let nats: NatsServer;
let cwd: string;
let dev: ChildProcess | undefined;
let stdout = "";
/** Log lines a child writes to stdout (`--json`), shown with its stderr when it exits early. */
let lines = "";

/**
 * Seven consecutive free ports (bridge, five functions, nats), below Linux's ephemeral range (32768+):
 * there, the port of any outgoing connection of a test running beside this one could take one of them
 * between this check and `jetway dev` binding it.
 */
async function freeBlock(): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const taken = await Promise.all(Array.from({ length: 7 }, (_, i) => isListening(base + i)));
    if (!taken.some(Boolean)) return base;
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    if (dev?.exitCode !== null)
      throw new Error(`jetway dev exited (${dev?.exitCode}) while waiting for ${what}:\n${stdout}\n${lines}`);
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  nats = await NatsServer.start();
  cwd = await mkdtemp(join(tmpdir(), "jetway-dev-"));
});

afterAll(async () => {
  if (dev && dev.exitCode === null) dev.kill("SIGKILL");
  await nats?.stop();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

describe("jetway dev", () => {
  it("prints how to install nats-server and exits 1 when there is none and no NATS to use", async () => {
    const base = await freeBlock();
    const { NATS_URL: _, ...env } = process.env;
    const result = await run(process.execPath, [BIN, "dev", "--port-base", String(base)], {
      cwd,
      env: { ...env, NATS_SERVER_BIN: join(cwd, "no-such-nats-server") },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("brew install nats-server");
  });

  it("refuses to start, naming the port, when another stack holds one of its ports", async () => {
    const base = await freeBlock();
    const other = createServer().listen(base + 2, "127.0.0.1");
    await once(other, "listening");
    try {
      const result = await run(process.execPath, [BIN, "dev", "--port-base", String(base)], {
        cwd,
        env: { ...process.env, NATS_URL: nats.url },
      }).then(
        () => ({ code: 0, stdout: "" }),
        (error: { code: number; stdout: string }) => error,
      );
      expect(result.code).toBe(1);
      expect(result.stdout).toContain(
        `port ${base + 2} (order) is already in use: is another jetway dev running?`,
      );
      expect(result.stdout).not.toContain("jetway dev is up");
    } finally {
      other.close();
    }
  });

  it("runs the printed curl example to a confirmed order, then stops cleanly on SIGTERM", async () => {
    const base = await freeBlock();
    const { DATABASE_URL: _, ...env } = process.env;
    dev = spawn(process.execPath, [BIN, "dev", "--port-base", String(base)], {
      cwd,
      env: { ...env, NATS_URL: nats.url, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    dev.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    dev.stderr?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => dev?.once("exit", (code) => resolve(code)));

    await until("the banner", async () => (stdout.includes("jetway dev is up") ? true : undefined));
    const lines = stdout.split("\n").map((l) => l.trim());
    const create = lines.find((l) => l.startsWith("curl -sS -X POST"));
    const watch = lines.find((l) => l.startsWith("curl -sS http") && l.includes("<order_id>"));
    expect(create).toContain(`127.0.0.1:${base + 2}/orders`);
    expect(watch).toBeDefined();

    const created = JSON.parse((await run("sh", ["-c", create ?? ""])).stdout) as { order_id: string };
    expect(created.order_id).toMatch(/^ord_/);
    const watchCmd = (watch ?? "").replace("<order_id>", created.order_id);
    const order = await until("the order to be confirmed", async () => {
      const view = JSON.parse((await run("sh", ["-c", watchCmd])).stdout) as Record<string, string>;
      return view.status === "confirmed" ? view : undefined;
    });
    expect(order).toMatchObject({ payment_status: "paid", inventory_status: "reserved" });

    // The printed status command (here with the CLI's own path for `npm run jetway --`) lists every route.
    const status = lines.find((l) => l.includes("npm run jetway -- status"));
    expect(status).toContain(`NATS_URL=${nats.url}`);
    const statusCmd = (status ?? "").replace("npm run jetway --", `${process.execPath} ${BIN}`);
    const table = (await run("sh", ["-c", statusCmd], { cwd })).stdout;
    expect(table).toMatch(/^route\s+stream\s+replicas/);
    expect(table).toMatch(/^payment\s+ORDERS\s+1\s/m);

    // Each function's lines are prefixed on the terminal and kept raw in its own file.
    expect(stdout).toMatch(/\[payment\] +INFO +payments settled/);
    expect(stdout).toMatch(/\[bridge\] +INFO/);
    const paymentLog = await readFile(join(cwd, ".jetway/logs/payment.log"), "utf8");
    const first = JSON.parse(paymentLog.split("\n")[0] ?? "") as { fn: string };
    expect(first.fn).toBe("payment");

    const devLog = (await readFile(join(cwd, ".jetway/logs/dev.log"), "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { child_pid?: number });
    const pids = devLog.flatMap((r) => (r.child_pid ? [r.child_pid] : []));
    expect(pids).toHaveLength(2);
    expect(pids.every(alive)).toBe(true);

    dev.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    expect(await isListening(base)).toBe(false);
    expect(await isListening(base + 2)).toBe(false);
  }, 180_000);

  it("starts its own nats-server with a persistent store when there is no NATS, and stops it last", async () => {
    const base = await freeBlock();
    const { DATABASE_URL: _, NATS_URL: __, ...env } = process.env;
    let out = "";
    const child = spawn(process.execPath, [BIN, "dev", "--port-base", String(base), "--json"], {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    dev = child;
    // What this child says, and only it, is what a failure shows (its JSON lines too).
    stdout = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      lines = out;
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    await until("the banner", async () =>
      stdout.includes(`nats://127.0.0.1:${base + 6}`) ? true : undefined,
    );
    // --json: the terminal gets the raw lines, the banner went to stderr.
    const records = out
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { fn?: string; msg?: string; child_pid?: number });
    const pids = records.flatMap((r) => (r.child_pid ? [r.child_pid] : []));
    expect(records.find((r) => r.msg === "started nats-server")).toBeDefined();
    expect(pids).toHaveLength(3);
    expect((await fetch(`http://127.0.0.1:${base}/readyz`)).status).toBe(200);

    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    expect(await isListening(base + 6)).toBe(false);
    expect((await readdir(join(cwd, ".jetway/nats"))).length).toBeGreaterThan(0);
  }, 180_000);
});
