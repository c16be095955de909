import { handle } from "hono/aws-lambda";
import { requestVars } from "../db/env.ts";
import { createAudit } from "./app.ts";
import { requireS3Store } from "./s3-store.ts";

// AWS Lambda: AUDIT_S3_BUCKET, AUDIT_S3_ENDPOINT, AUDIT_S3_REGION and keys in the function's environment.
export const handler = handle(createAudit({ store: (c) => requireS3Store(requestVars(c)) }).app);
