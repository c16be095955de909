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
