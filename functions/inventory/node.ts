import { createDb, migrate } from "../db/index.ts";
import { serveNode } from "../sdk/node.ts";
import { createInventory } from "./app.ts";
import { parseLevels, seedStock } from "./stock.ts";

// Node host: DATABASE_URL (else embedded PGlite), PORT (default 8793), SEED_STOCK="sku-1=100,sku-2=5".
const handle = await createDb(process.env, { name: "inventory" });
await migrate(handle);
if (process.env.SEED_STOCK) await seedStock(handle.db, parseLevels(process.env.SEED_STOCK));
serveNode(createInventory({ db: () => handle.db }).app, { port: Number(process.env.PORT ?? 8793) });
