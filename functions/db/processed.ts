import { lt, sql } from "drizzle-orm";
import { rowsOf } from "./arrays.ts";
import type { Db } from "./client.ts";
import { processedMessages } from "./schema.ts";

/**
 * Records that `consumer` applied `messageId`; false when it already had. Call it inside the transaction
 * that applies the effect: a concurrent duplicate blocks on the primary key until the first commits (then
 * sees false) or rolls back (then proceeds).
 */
export async function markProcessed(db: Db, consumer: string, messageId: string): Promise<boolean> {
  return (await markProcessedMany(db, consumer, [messageId])).has(messageId);
}

/** `markProcessed` for many messages in one statement: the ids that were new. */
export async function markProcessedMany(
  db: Db,
  consumer: string,
  messageIds: readonly string[],
): Promise<Set<string>> {
  if (messageIds.length === 0) return new Set();
  const rows = await db
    .insert(processedMessages)
    // Sorted, so overlapping batches take the primary-key locks in one order.
    .select(
      rowsOf(
        processedMessages,
        ["consumer", "message_id"],
        [...new Set(messageIds)].sort().map((message_id) => ({ consumer, message_id })),
      ),
    )
    .onConflictDoNothing()
    .returning({ id: processedMessages.message_id });
  return new Set(rows.map((r) => r.id));
}

/**
 * Forgets messages applied more than `olderThanS` seconds ago; returns how many. Safe once redeliveries
 * of them can no longer arrive (beyond the streams' max_age or the consumers' max_deliver × back-off).
 */
export async function pruneProcessed(db: Db, olderThanS: number): Promise<number> {
  const rows = await db
    .delete(processedMessages)
    .where(lt(processedMessages.processed_at, sql`now() - make_interval(secs => ${olderThanS})`))
    .returning({ id: processedMessages.message_id });
  return rows.length;
}
