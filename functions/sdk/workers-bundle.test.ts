import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");

/**
 * The SDK core must bundle for Cloudflare Workers without nodejs_compat: no node-only import may sneak
 * in, and pino must resolve to its browser build.
 */
describe("Workers bundle", () => {
  let dir = "";
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("bundles a sample function with wrangler, without node built-ins", async () => {
    dir = await mkdtemp(join(tmpdir(), "jetway-worker-"));
    const sdk = join(ROOT, "functions/sdk/index.ts");
    const schemas = join(ROOT, "schemas/index.ts");
    await writeFile(
      join(dir, "worker.ts"),
      `import { defineFunction } from ${JSON.stringify(sdk)};
import { OrderCreated } from ${JSON.stringify(schemas)};
export default defineFunction({ name: "w" }).handle(OrderCreated, (e, ctx) => ctx.log.info(e.data.order_id)).app;
`,
    );
    await writeFile(
      join(dir, "wrangler.toml"),
      'name = "w"\nmain = "worker.ts"\ncompatibility_date = "2025-09-01"\n',
    );
    await run(
      join(ROOT, "node_modules/.bin/wrangler"),
      ["deploy", "--dry-run", "--outdir", join(dir, "out")],
      {
        cwd: dir,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" },
      },
    );
    const bundle = await readFile(join(dir, "out/worker.js"), "utf8");
    const sources = (
      JSON.parse(await readFile(join(dir, "out/worker.js.map"), "utf8")) as { sources: string[] }
    ).sources;
    expect(bundle).not.toMatch(/(from|require\()\s*["']node:/);
    expect(sources.some((s) => s.endsWith("pino/browser.js"))).toBe(true);
    expect(sources.some((s) => s.endsWith("functions/sdk/node.ts"))).toBe(false);
  });
});
