import { requestVars } from "../db/env.ts";
import { createAudit } from "./app.ts";
import { requireS3Store } from "./s3-store.ts";

// Cloudflare Workers: the log goes to R2 (or any S3-compatible store) through its S3 API.
export default createAudit({ store: (c) => requireS3Store(requestVars(c)) }).app;
