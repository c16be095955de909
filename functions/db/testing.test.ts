import { describe, expect, it } from "vitest";
import { decideTestDb, TestDbUnavailableError } from "./testing.ts";

const DEFAULT = "postgresql://postgres@127.0.0.1:5432/test";
const OTHER = "postgresql://me@db.internal:5432/x";
const up = async () => true;
const down = async () => false;

describe("decideTestDb", () => {
  it.each([
    ["a server at 5432", {}, up, { driver: "postgres", url: DEFAULT }],
    [
      "DATABASE_URL, even with nothing at 5432",
      { DATABASE_URL: OTHER },
      down,
      { driver: "postgres", url: OTHER },
    ],
    ["no server on a laptop", {}, down, { driver: "pglite", reason: "no-postgres" }],
    [
      "forced pglite despite a server",
      { JETWAY_TEST_DB: "pglite" },
      up,
      { driver: "pglite", reason: "forced" },
    ],
    [
      "forced postgres",
      { JETWAY_TEST_DB: "postgres", CI: "true" },
      down,
      { driver: "postgres", url: DEFAULT },
    ],
    ["CI with a server", { CI: "true" }, up, { driver: "postgres", url: DEFAULT }],
  ] as const)("%s", async (_, env, probe, expected) => {
    expect(await decideTestDb(env, probe)).toEqual(expected);
  });

  it("refuses to fall back on CI, saying how to point at a server", async () => {
    const decision = decideTestDb({ CI: "true" }, down);
    await expect(decision).rejects.toBeInstanceOf(TestDbUnavailableError);
    await expect(decision).rejects.toThrow(/DATABASE_URL/);
  });

  it("rejects an unknown JETWAY_TEST_DB", async () => {
    await expect(decideTestDb({ JETWAY_TEST_DB: "mysql" }, up)).rejects.toThrow(/JETWAY_TEST_DB/);
  });
});
