import * as fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it, vi } from "vitest";

const hook: { fail?: (path: string, text: string) => void } = {};
vi.mock("node:fs", async (orig) => {
  const real = (await orig()) as typeof fs;
  return {
    ...real,
    appendFileSync: (path: fs.PathOrFileDescriptor, text: string) => {
      hook.fail?.(String(path), text);
      return real.appendFileSync(path, text);
    },
  };
});

const { DirStore } = await import("./dir-store.ts");
const { entryKey } = await import("./entry.ts");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jetway-audit-enospc-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("a partial append on a new directory's first write (disk full) does not hide later acknowledged entries", async () => {
  const root = join(dir, "full");
  const store = new DirStore(root);
  // First write to a new stream directory: ENOENT, mkdir, then the retry append is cut short (ENOSPC).
  hook.fail = (path, text) => {
    if (!fs.existsSync(join(root, "S"))) return; // the first attempt fails with the real ENOENT
    hook.fail = undefined;
    fs.writeFileSync(path, text.slice(0, 10), { flag: "a" });
    throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
  };
  await expect(store.putIfAbsent(entryKey("S", 1), "one\n")).rejects.toThrow(/ENOSPC/);
  // Space is back; the redelivery and the next message are written and acknowledged.
  expect(await store.putIfAbsent(entryKey("S", 1), "one\n")).toBe(true);
  expect(await store.putIfAbsent(entryKey("S", 2), "two\n")).toBe(true);
  // Every reader (replay, a restarted writer) must see them.
  expect(await new DirStore(root).list()).toEqual([entryKey("S", 1), entryKey("S", 2)]);
});
