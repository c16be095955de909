import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..");

/**
 * Every domain function's Workers entry must build with its own wrangler.toml — and keep the node-only
 * pieces (embedded PGlite, the file-reading migrator, the local audit directory) out of the bundle.
 */
describe("Workers bundles of the domain functions", () => {
  let dir = "";
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each(["order", "payment", "inventory", "audit"])("%s bundles with wrangler", async (name) => {
    dir ||= await mkdtemp(join(tmpdir(), "jetway-wr-"));
    const out = join(dir, name);
    await run(
      join(ROOT, "node_modules/.bin/wrangler"),
      ["deploy", "--dry-run", "--outdir", out, "-c", join(ROOT, "functions", name, "wrangler.toml")],
      { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" } },
    );
    const bundle = await readFile(join(out, "worker.js"), "utf8");
    const { sources } = JSON.parse(await readFile(join(out, "worker.js.map"), "utf8")) as {
      sources: string[];
    };
    expect(bundle).toMatch(/export\s*\{[^}]*\bas default\b/);
    expect(sources.some((s) => s.endsWith(`functions/${name}/app.ts`))).toBe(true);
    for (const nodeOnly of [
      "@electric-sql/pglite",
      "functions/db/pglite.ts",
      "functions/db/migrate.ts",
      "dir-store.ts",
    ]) {
      expect(sources.some((s) => s.includes(nodeOnly))).toBe(false);
    }
  });
});
