import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { JSON_DIR, renderJsonSchemas } from "./export-json.ts";
import { allEvents } from "./index.ts";

describe("committed JSON Schemas", () => {
  const expected = renderJsonSchemas();

  it("has exactly one file per subject", async () => {
    const onDisk = (await readdir(JSON_DIR)).filter((f) => f.endsWith(".json")).sort();
    expect(onDisk).toEqual([...expected.keys()].sort());
    expect(onDisk).toHaveLength(allEvents.length);
  });

  it.each([...expected.entries()])(
    "%s matches the zod source (run `npm run schemas`)",
    async (name, text) => {
      expect(await readFile(join(JSON_DIR, name), "utf8")).toBe(text);
    },
  );
});
