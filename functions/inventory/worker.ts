import { perRequestPostgres } from "../db/providers.ts";
import { createInventory } from "./app.ts";

// Cloudflare Workers: DATABASE_URL secret or a HYPERDRIVE binding.
const postgres = perRequestPostgres();
export default postgres.handler(createInventory({ db: postgres.db }).app);
