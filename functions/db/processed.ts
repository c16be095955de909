import { sql } from "drizzle-orm";
import { insertMissing } from "./arrays.ts";
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

/** The claim of markProcessedMany: the ids that were new come back. */
const claimMessages = insertMissing<typeof processedMessages, { id: string }>(
  "claim_messages",
  processedMessages,
  ["consumer", "message_id"],
  { id: processedMessages.message_id },
);

/** `markProcessed` for many messages in one statement: the ids that were new. */
export async function markProcessedMany(
  db: Db,
  consumer: string,
  messageIds: readonly string[],
): Promise<Set<string>> {
  if (messageIds.length === 0) return new Set();
  // Sorted, so overlapping batches take the primary-key locks in one order.
  const rows = [...new Set(messageIds)].sort().map((message_id) => ({ consumer, message_id }));
  const claimed = await claimMessages(db, rows);
  return new Set(claimed.map((r) => r.id));
}

/**
 * Forgets messages applied more than `olderThanS` seconds ago, at most `limit` rows (one statement, so it
 * never holds many locks for long); returns how many. Call again while it returns `limit`. Safe once the
 * messages can no longer arrive again: past their routes' redeliveries (max_deliver × back-off and
 * ack_wait) and past any replay of their stream an operator may start.
 */
export async function pruneProcessed(db: Db, olderThanS: number, limit = 5_000): Promise<number> {
  const expired = sql`select ctid from ${processedMessages}
    where ${processedMessages.processed_at} < now() - make_interval(secs => ${olderThanS}) limit ${limit}`;
  const rows = await db
    .delete(processedMessages)
    .where(sql`ctid = any(array(${expired}))`)
    .returning({ id: processedMessages.message_id });
  return rows.length;
}
