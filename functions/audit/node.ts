import { requestVars } from "../db/env.ts";
import { serveNode } from "../sdk/node.ts";
import { createAudit } from "./app.ts";
import { DirStore } from "./dir-store.ts";
import { s3StoreFromVars } from "./s3-store.ts";

// Node host: AUDIT_S3_BUCKET (+ AUDIT_S3_ENDPOINT, keys) for a bucket, else AUDIT_DIR (.jetway/audit). PORT 8794.
const local = new DirStore(process.env.AUDIT_DIR ?? ".jetway/audit");
const app = createAudit({ store: (c) => s3StoreFromVars(requestVars(c)) ?? local }).app;
serveNode(app, { port: Number(process.env.PORT ?? 8794) });
