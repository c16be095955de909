import { createDb, migrate } from "../db/index.ts";
import { createNodeFetch, serveNode } from "../sdk/node.ts";
import { createPayment, gatewayFetchOptions, paymentSettings } from "./app.ts";

// Node host: DATABASE_URL (else embedded PGlite), GATEWAY_URL, PORT (default 8792).
// A gateway setting that cannot be used stops start-up, naming it, rather than failing every delivery.
paymentSettings(process.env);
const fetch = createNodeFetch(gatewayFetchOptions(process.env));
const handle = await createDb(process.env, { name: "payment" });
await migrate(handle);
serveNode(createPayment({ db: () => handle.db, fetch }).app, {
  port: Number(process.env.PORT ?? 8792),
});
