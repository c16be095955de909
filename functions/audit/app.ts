import type { Context } from "hono";
import { allEvents } from "../../schemas/index.ts";
import { defineFunction, InvalidEventError, type JetwayFunction, RetryableError } from "../sdk/index.ts";
import { AuditStoreError, entryKey, type ObjectStore, serializeEntry } from "./entry.ts";

export interface AuditDeps {
  /** The log's store for this request (a directory on Node, a bucket anywhere). */
  store: (c: Context) => ObjectStore;
}

/**
 * audit: appends every event of every contract to an immutable, replayable log, one object per stream
 * message at `<stream>/<seq>.json`. A redelivery finds the key taken and writes nothing, so the log holds
 * each message exactly once; replay.ts folds it back into a read model.
 */
export function createAudit(deps: AuditDeps): JetwayFunction {
  const fn = defineFunction({ name: "audit" });
  for (const type of allEvents) {
    fn.handle(type, async (event, ctx) => {
      if (!event.stream || event.seq <= 0) {
        throw new InvalidEventError(
          "audit needs the stream and sequence the bridge sends with each delivery",
        );
      }
      const occurred = (event.data as { occurred_at?: string }).occurred_at;
      const time = event.time ?? occurred ?? new Date(0).toISOString();
      const key = entryKey(event.stream, event.seq);
      const body = serializeEntry({ ...event, time });
      let written: boolean;
      try {
        written = await deps.store(ctx.c).putIfAbsent(key, body);
      } catch (err) {
        if (err instanceof AuditStoreError) throw new RetryableError(err.message, { cause: err });
        throw err;
      }
      ctx.log.debug({ key, written }, written ? "audited" : "already audited");
    });
  }
  return fn;
}
