import { execFileSync } from "node:child_process";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";

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

describe("logger", () => {
  it("redacts passwords, tokens, secrets and authorization headers", () => {
    const { lines, logger } = capture();
    logger.info(
      {
        config: { nats: { pass: "p4ss", token: "t0ken" }, http: { publish_token: "pubtok123" } },
        headers: { authorization: "Bearer abc" },
        route: { name: "ship", secret: "hmac" },
      },
      "starting",
    );
    const text = lines.join("");
    for (const secret of ["p4ss", "t0ken", "pubtok123", "Bearer abc", "hmac"])
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
});
