import { execFileSync, spawn } from "node:child_process";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";
import { traceId } from "./outcome-log.ts";

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, logger: createLogger({ level: "info", destination }) };
}

describe("trace ids in log lines", () => {
  it("come from a valid traceparent only, as the SDK's logs read them", () => {
    const id = "4bf92f3577b34da6a3ce929d0e0e4736";
    expect(traceId(`00-${id}-00f067aa0ba902b7-01`)).toBe(id);
    for (const bad of [
      `00-${"Z".repeat(32)}-00f067aa0ba902b7-01`,
      `00-${"0".repeat(32)}-00f067aa0ba902b7-01`,
      "x",
    ])
      expect(traceId(bad)).toBeUndefined();
  });
});

describe("logger", () => {
  it("redacts passwords, tokens, secrets and authorization headers", () => {
    const { lines, logger } = capture();
    logger.info(
      {
        config: {
          nats: { pass: "p4ss", token: "t0ken" },
          http: { publish_token: "pubtok123", publish_secret: "pubsig456" },
        },
        headers: { authorization: "Bearer abc" },
        route: { name: "ship", secret: "hmac" },
      },
      "starting",
    );
    const text = lines.join("");
    for (const secret of ["p4ss", "t0ken", "pubtok123", "pubsig456", "Bearer abc", "hmac"])
      expect(text).not.toContain(secret);
    expect(text).toContain("[redacted]");
    expect(JSON.parse(text)).toMatchObject({ msg: "starting", route: { name: "ship" } });
  });

  it("writes stdout whole and in order, one turn at a time, and what is left when the process exits", () => {
    const logger = fileURLToPath(new URL("./logger.ts", import.meta.url));
    const script = `
      const { createLogger } = await import(${JSON.stringify(logger)});
      const log = createLogger();
      for (let i = 0; i < 3; i++) log.info({ i }, "same turn");
      setImmediate(() => {
        log.info({ i: 3, text: "é✓".repeat(2000) }, "next turn");
        log.info({ i: 4 }, "just before exit");
        process.exit(0);
      });`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    const lines = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { i: number; msg: string });
    expect(lines.map((l) => l.i)).toEqual([0, 1, 2, 3, 4]);
    expect(lines.at(-1)?.msg).toBe("just before exit");
  });

  it("loses nothing when stdout is a full non-blocking pipe (partial writes, EAGAIN)", async () => {
    const logger = fileURLToPath(new URL("./logger.ts", import.meta.url));
    // Touching process.stdout makes Node put the pipe in non-blocking mode, as under a container runtime
    // reading slowly: then writes come back short or with EAGAIN once the pipe's 64 KiB are full.
    const script = `
      process.stdout;
      const { createLogger } = await import(${JSON.stringify(logger)});
      const log = createLogger();
      let i = 0;
      const turn = () => {
        for (let n = 0; n < 200; n++, i++) log.info({ i, pad: "é✓".repeat(20) }, "line");
        if (i < 40000) setImmediate(turn);
      };
      turn();`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const chunks: Buffer[] = [];
    child.stdout.pause();
    // Let the child fill the pipe and run into it for a while before anything is read.
    await new Promise((resolve) => setTimeout(resolve, 400));
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
    child.stdout.resume();
    const code = await new Promise((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    const lines = Buffer.concat(chunks).toString("utf8").trim().split("\n");
    expect(lines).toHaveLength(40000);
    const seen = lines.map((l) => (JSON.parse(l) as { i: number }).i);
    expect(seen.every((value, index) => value === index)).toBe(true);
  });
});
