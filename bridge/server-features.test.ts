import { describe, expect, it } from "vitest";
import { serverFeatures } from "./server-features.ts";

describe("serverFeatures", () => {
  it.each([
    ["2.9.10", false],
    ["2.10.0", false],
    ["2.10.3", false],
    ["2.10.4", true],
    ["2.10.22", true],
    ["v2.11.0-RC.1", true],
    ["3.0", true],
    ["garbage", false],
  ])("%s → termWithReason %s", (version, expected) => {
    expect(serverFeatures(version)).toEqual({ version, termWithReason: expected });
  });
});
