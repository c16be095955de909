import { perRequestPostgres } from "../db/providers.ts";
import { createOrder } from "./app.ts";

// Cloudflare Workers: DATABASE_URL secret or a HYPERDRIVE binding; JETWAY_PUBLISH_URL var.
const postgres = perRequestPostgres();
export default postgres.handler(createOrder({ db: postgres.db }).app);
