import { lt, sql } from "drizzle-orm";
import type { Db } from "./client.ts";
import { processedMessages } from "./schema.ts";

/**
 * Records that `consumer` applied `messageId`; false when it already had. Call it inside the transaction
 * that applies the effect: a concurrent duplicate blocks on the primary key until the first commits (then
 * sees false) or rolls back (then proceeds).
 */
export async function markProcessed(db: Db, consumer: string, messageId: string): Promise<boolean> {
  const rows = await db
    .insert(processedMessages)
    .values({ consumer, message_id: messageId })
    .onConflictDoNothing()
    .returning({ id: processedMessages.message_id });
  return rows.length > 0;
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
