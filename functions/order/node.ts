import { createDb, migrate } from "../db/index.ts";
import { createNodeFetch, serveNode } from "../sdk/node.ts";
import { createOrder } from "./app.ts";

// Node host: DATABASE_URL (else embedded PGlite), JETWAY_PUBLISH_URL, PORT (default 8791).
const handle = await createDb(process.env, { name: "order" });
await migrate(handle);
serveNode(createOrder({ db: () => handle.db, fetch: createNodeFetch() }).app, {
  port: Number(process.env.PORT ?? 8791),
});
