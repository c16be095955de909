import { describe, expect, it } from "vitest";
import { CompareArgsError, parseCompareArgs } from "./compare-args.ts";

describe("parseCompareArgs", () => {
  it("takes a ref, and hands what follows -- to every bench run", () => {
    expect(parseCompareArgs(["abc123", "--rounds", "2", "--only", "pipeline", "--", "--n", "20000"])).toEqual(
      {
        ref: "abc123",
        rounds: 2,
        runFlags: ["--only", "pipeline", "--n", "20000"],
        env: { base: {}, head: {} },
      },
    );
  });

  it("compares this checkout with itself when only environments differ", () => {
    const args = parseCompareArgs([
      "--head-env",
      "NATS_SERVER_BIN=/opt/nats/2.10/nats-server",
      "--base-env",
      "GOMAXPROCS=2",
      "--head-env",
      "NODE_OPTIONS=--max-semi-space-size=32 --x=a=b",
      "--",
      "--n",
      "10000",
    ]);
    expect(args.ref).toBeUndefined();
    expect(args.env).toEqual({
      base: { GOMAXPROCS: "2" },
      head: {
        NATS_SERVER_BIN: "/opt/nats/2.10/nats-server",
        NODE_OPTIONS: "--max-semi-space-size=32 --x=a=b",
      },
    });
    // Nothing after -- is taken for the ref.
    expect(args.runFlags).toEqual(["--only", "ceiling-http,bridge", "--n", "10000"]);
  });

  it.each([
    [[], /nothing to compare/],
    [["--", "--n", "1000"], /nothing to compare/],
    [["a", "b"], /one git ref at most/],
    [["a", "--rounds", "0"], /--rounds must be a positive integer, got 0/],
    [["a", "--rounds", "1.5"], /--rounds must be a positive integer/],
    [["--head-env", "NOEQUALS"], /--head-env takes NAME=VALUE, got "NOEQUALS"/],
    [["--base-env", "=x"], /--base-env takes NAME=VALUE/],
    [["--base-env", "1X=y"], /--base-env takes NAME=VALUE/],
  ])("refuses %j", (argv, message) => {
    expect(() => parseCompareArgs(argv)).toThrow(CompareArgsError);
    expect(() => parseCompareArgs(argv)).toThrow(message);
  });
});
