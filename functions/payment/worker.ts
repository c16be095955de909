import { perRequestPostgres } from "../db/providers.ts";
import { createPayment } from "./app.ts";

// Cloudflare Workers: DATABASE_URL secret or a HYPERDRIVE binding; GATEWAY_URL var.
const postgres = perRequestPostgres();
export default postgres.handler(createPayment({ db: postgres.db }).app);
