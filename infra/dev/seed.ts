import type { Db } from "../../functions/db/index.ts";
import { stock } from "../../functions/db/schema.ts";

/** Stock the dev database starts with; the README's curl example orders these SKUs. */
export const DEV_STOCK: Readonly<Record<string, number>> = {
  "sku-coffee": 1_000,
  "sku-mug": 500,
  "sku-filter": 200,
};

/**
 * Adds the dev SKUs that are missing and leaves existing levels alone, so a restart keeps what earlier
 * runs sold. (Tests set exact levels with the inventory function's `seedStock`.)
 */
export async function seedDevStock(db: Db, levels: Readonly<Record<string, number>> = DEV_STOCK) {
  const rows = Object.entries(levels).map(([sku, available]) => ({ sku, available }));
  if (rows.length > 0) await db.insert(stock).values(rows).onConflictDoNothing();
}
