import { mkdir, mkdtemp, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DirStore } from "./dir-store.ts";
import { entryKey } from "./entry.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jetway-audit-edges-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("DirStore edges", () => {
  it("a transient failure reading the directory on first write does not break the stream for good", async () => {
    const root = join(dir, "poison");
    // Something unreadable sits in the stream directory for a moment (here: a directory named *.log -> EISDIR).
    await mkdir(join(root, "S", "odd.log"), { recursive: true });
    const store = new DirStore(root);
    await expect(store.putIfAbsent(entryKey("S", 1), "one\n")).rejects.toThrow();
    // The cause goes away.
    await rm(join(root, "S", "odd.log"), { recursive: true });
    // A fresh writer succeeds...
    expect(await new DirStore(root).putIfAbsent(entryKey("S", 2), "two\n")).toBe(true);
    // ...but the long-running writer keeps failing every message of the stream until restarted.
    const later = await store.putIfAbsent(entryKey("S", 3), "three\n").then(
      (v) => v,
      (e: Error) => `still failing: ${e.message}`,
    );
    expect(later).toBe(true);
  });

  it("payload with newlines, lone surrogates and multibyte text round-trips", async () => {
    const root = join(dir, "text");
    const store = new DirStore(root);
    const body = `${JSON.stringify({ a: "x\ny\r\n", b: "\ud800", c: "é😀" })}\n`;
    expect(await store.putIfAbsent(entryKey("S", 1), body)).toBe(true);
    expect(await store.putIfAbsent(entryKey("S", 2), "two\n")).toBe(true);
    const reader = new DirStore(root);
    expect(await reader.get(entryKey("S", 1))).toBe(body);
    expect(await reader.get(entryKey("S", 2))).toBe("two\n");
  });

  it("legacy .json next to a segment", async () => {
    const root = join(dir, "legacy");
    await mkdir(join(root, "S"), { recursive: true });
    await writeFile(join(root, entryKey("S", 1)), "legacy\n");
    const s = new DirStore(root);
    expect(await s.putIfAbsent(entryKey("S", 1), "x\n")).toBe(false);
  });
  it("starts a new segment past segmentBytes, and reads every entry across them", async () => {
    const root = join(dir, "rotating");
    const store = new DirStore(root, { segmentBytes: 100 });
    for (let seq = 1; seq <= 5; seq++)
      expect(await store.putIfAbsent(entryKey("S", seq), "x".repeat(60))).toBe(true);
    const segments = (await readdir(join(root, "S"))).filter((f) => f.endsWith(".log"));
    expect(segments.length).toBeGreaterThanOrEqual(3);
    const keys = Array.from({ length: 5 }, (_, i) => entryKey("S", i + 1));
    expect(await new DirStore(root).list()).toEqual(keys);
  });
});
