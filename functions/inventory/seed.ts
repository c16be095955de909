import { createDb, migrate } from "../db/index.ts";
import { parseLevels, seedStock } from "./stock.ts";

/**
 * `node functions/inventory/seed.ts [sku-1=100,sku-2=5]` — sets dev stock levels in DATABASE_URL's
 * database (or the inventory function's PGlite directory; stop the function first, PGlite is
 * single-process). Default: sku-1..sku-5 with 1000 each.
 */
export const DEV_STOCK = "sku-1=1000,sku-2=1000,sku-3=1000,sku-4=1000,sku-5=1000";

if (import.meta.main) {
  const levels = parseLevels(process.argv[2] ?? DEV_STOCK);
  const handle = await createDb(process.env, { name: "inventory" });
  try {
    await migrate(handle);
    await seedStock(handle.db, levels);
    process.stdout.write(`seeded ${Object.keys(levels).length} SKUs\n`);
  } finally {
    await handle.close();
  }
}
