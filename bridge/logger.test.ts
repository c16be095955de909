import { Writable } from "node:stream";
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
});
