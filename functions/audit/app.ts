import type { Context } from "hono";
import { allEvents } from "../../schemas/index.ts";
import {
  type BatchContext,
  defineFunction,
  type InvokedEvent,
  type JetwayFunction,
  mapLimit,
} from "../sdk/index.ts";
import { AuditStoreError, entryKey, type ObjectStore, serializeEntry } from "./entry.ts";

export interface AuditDeps {
  /** The log's store for this request (a directory on Node, a bucket anywhere). */
  store: (c: Context) => ObjectStore;
}

/** How many entries of one batch are written at once. */
const WRITES_IN_FLIGHT = 16;

/**
 * audit: appends every event of every contract to an immutable, replayable log, one entry per stream
 * message, its data as published, under the key `<stream>/<seq>.json` (appended to segment files in a
 * directory, an object each in a bucket). A redelivery finds the key taken and writes nothing, so the log
 * holds each message once; replay.ts folds it back into a read model. Entries are independent, so a batch
 * delivery writes them side by side and fails only the ones whose write failed.
 */
export function createAudit(deps: AuditDeps): JetwayFunction {
  const fn = defineFunction({ name: "audit" });
  for (const type of allEvents) {
    fn.handleBatch(type, async (events, ctx) => {
      const store = deps.store(ctx.c);
      await mapLimit(events, WRITES_IN_FLIGHT, (event) => audit(store, event, ctx));
    });
  }
  return fn;
}

async function audit(store: ObjectStore, event: InvokedEvent, ctx: BatchContext): Promise<void> {
  if (!event.stream || event.seq <= 0) {
    ctx.fail(event.id, {
      reason: "audit needs the stream and sequence the bridge sends with each delivery",
      deadLetter: true,
    });
    return;
  }
  const occurred = (event.data as { occurred_at?: string }).occurred_at;
  const time = event.time ?? occurred ?? new Date(0).toISOString();
  const key = entryKey(event.stream, event.seq);
  try {
    // The event as published, not as this deployment's contract reads it: a field a newer producer added
    // (EVOLUTION.md allows optional ones within a version) is kept, and no default is filled in.
    const written = await store.putIfAbsent(key, serializeEntry({ ...event, time, data: event.raw }));
    ctx.log.debug({ key, written }, written ? "audited" : "already audited");
  } catch (err) {
    // Retried with the route's back-off either way; an unexpected error is logged as the bug it is.
    ctx.log[err instanceof AuditStoreError ? "warn" : "error"]({ err, key }, "audit write failed");
    ctx.fail(event.id, { reason: (err as Error).message });
  }
}
