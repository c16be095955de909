import { describe, expect, it } from "vitest";
import { InvalidConfigError, MissingConfigError, positiveIntVar, requireVar } from "./env.ts";

describe("function settings", () => {
  it("reads a whole number of at least 1, or the fallback when unset", () => {
    expect(positiveIntVar({ N: "12" }, "N", 3)).toBe(12);
    expect(positiveIntVar({}, "N", 3)).toBe(3);
    expect(positiveIntVar({ N: "" }, "N", 3)).toBe(3);
  });

  it.each(["0", "-1", "1.5", "1e3", " 5", "five", "99999999999999999999"])(
    "refuses %j, naming it",
    (value) => {
      expect(() => positiveIntVar({ N: value }, "N", 3)).toThrow(InvalidConfigError);
      expect(() => positiveIntVar({ N: value }, "N", 3)).toThrow(
        `N must be a whole number of at least 1, got "${value}"`,
      );
    },
  );

  it("names a required setting that is missing", () => {
    expect(requireVar({ URL: "x" }, "URL")).toBe("x");
    expect(() => requireVar({}, "URL")).toThrow(MissingConfigError);
    expect(() => requireVar({}, "URL")).toThrow("URL is not set");
  });
});
