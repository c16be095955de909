import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");

/** A user's function that imports the package by name, as the README's example does. */
const APP = `import { defineFunction } from "jetway/function";
import { invoke } from "jetway/function/testing";
import { OrderCreated, PaymentCompleted } from "jetway/schemas";

const payment = defineFunction({ name: "payment" }).handle(OrderCreated, async (event, ctx) => {
  ctx.emit(PaymentCompleted, { message_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", occurred_at: new Date(0).toISOString(),
    order_id: event.data.order_id, payment_id: "pay_1", amount_minor: event.data.total_minor,
    currency: event.data.currency, gateway_charge_id: "ch_1" }, { id: \`payment:\${event.data.order_id}\` });
});
const res = await invoke(payment.app, OrderCreated, {
  message_id: "01ARZ3NDEKTSV4RRFFQ69G5FAX", occurred_at: new Date(0).toISOString(), order_id: "ord_1",
  customer_id: "cus_1", items: [{ sku: "sku-1", quantity: 1, unit_price_minor: 500 }], total_minor: 500,
  currency: "EUR", payment_method: "card", payment_token: "tok_visa",
}, { secret: "s", env: { JETWAY_LOG_LEVEL: "silent" } });
console.log(JSON.stringify({ status: res.status, body: await res.json() }));
`;

/** What a user's project would typecheck with: no allowImportingTsExtensions, nothing of this repo's. */
const TSCONFIG = {
  compilerOptions: {
    target: "ES2023",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ["node"],
  },
  files: ["app.ts"],
};

/**
 * The package as npm would install it from its tarball: a copy, not a link to this checkout, so Node
 * runs it as a dependency (it strips no types under node_modules) and tsc reads its declarations.
 */
describe("the package installed as a dependency", () => {
  let dir = "";
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("runs and typechecks a function that imports jetway/function, /testing and /schemas", async () => {
    dir = await mkdtemp(join(tmpdir(), "jetway-package-"));
    const pkg = join(dir, "node_modules/jetway");
    await run(
      process.execPath,
      [
        join(ROOT, "node_modules/typescript/bin/tsc"),
        "-p",
        "tsconfig.build.json",
        "--outDir",
        join(pkg, "dist"),
      ],
      {
        cwd: ROOT,
      },
    );
    const packed = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT });
    const [{ files }] = JSON.parse(packed.stdout) as [{ files: { path: string }[] }];
    expect(files.some((f) => f.path === "package.json")).toBe(true);
    for (const { path } of files) {
      if (path.startsWith("dist/")) continue;
      await mkdir(dirname(join(pkg, path)), { recursive: true });
      await cp(join(ROOT, path), join(pkg, path));
    }
    // Its dependencies as npm would put them beside it (here: this checkout's copies).
    const manifest = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    for (const name of [...Object.keys(manifest.dependencies), "@types/node"]) {
      await mkdir(dirname(join(dir, "node_modules", name)), { recursive: true });
      await symlink(join(ROOT, "node_modules", name), join(dir, "node_modules", name), "dir");
    }
    await writeFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    await writeFile(join(dir, "app.mjs"), APP);
    await writeFile(join(dir, "app.ts"), APP);
    await writeFile(join(dir, "tsconfig.json"), JSON.stringify(TSCONFIG));

    const out = await run(process.execPath, ["app.mjs"], { cwd: dir });
    expect(JSON.parse(out.stdout)).toMatchObject({
      status: 200,
      body: { events: [{ subject: "payments.completed.v1", id: "payment:ord_1" }] },
    });
    await run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], {
      cwd: dir,
    });
  }, 120_000);
});
