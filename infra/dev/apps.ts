import { createAudit } from "../../functions/audit/app.ts";
import { DirStore } from "../../functions/audit/dir-store.ts";
import type { DbHandle } from "../../functions/db/index.ts";
import { createInventory } from "../../functions/inventory/app.ts";
import { createOrder } from "../../functions/order/app.ts";
import { createPayment } from "../../functions/payment/app.ts";
import { createNodeFetch } from "../../functions/sdk/node-fetch.ts";
import type { FunctionName } from "./ports.ts";

/** One keep-alive Node fetch for the dev host's functions. */
let shared: typeof fetch | undefined;
const nodeFetch = (): typeof fetch => {
  shared ??= createNodeFetch();
  return shared;
};

/** What the dev host needs of a function: something that answers fetch with per-request bindings. */
export interface FetchApp {
  fetch(request: Request, env?: Record<string, unknown>): Response | Promise<Response>;
}

export interface AppDeps {
  /** One database for all functions: PGlite admits a single connection per process. */
  db: DbHandle;
  /** The dev bindings (functionVars): AUDIT_DIR and friends. */
  vars: Record<string, string>;
}

/**
 * Every domain function of the reference system, built from the shared dev dependencies. The gateway
 * simulator is not here: the host builds it itself so it can hand its state to tests.
 */
export const DOMAIN_APPS: Record<Exclude<FunctionName, "gateway-sim">, (deps: AppDeps) => FetchApp> = {
  // Their outbound calls (the bridge's publish ingress, the gateway) go through the Node fetch, as on a
  // Node host: the global one costs ~4× the CPU per call.
  order: ({ db }) => createOrder({ db: () => db.db, fetch: nodeFetch() }).app,
  payment: ({ db }) => createPayment({ db: () => db.db, fetch: nodeFetch() }).app,
  inventory: ({ db }) => createInventory({ db: () => db.db }).app,
  audit: ({ vars }) => {
    // The dev audit log is a local directory (`.jetway/audit`); the S3 store is for deployments.
    const store = new DirStore(vars.AUDIT_DIR ?? ".jetway/audit");
    return createAudit({ store: () => store }).app;
  },
};
