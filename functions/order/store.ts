import { and, asc, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { newId } from "../db/ids.ts";
import { orders } from "../db/schema.ts";
import type { OrderRequest } from "./request.ts";

export type Order = typeof orders.$inferSelect;

export interface NewOrder {
  request: OrderRequest;
  total_minor: number;
  request_hash: string;
  idempotency_key: string | undefined;
  /** Builds the orders.created.v1 payload for the new order's id. */
  event: (orderId: string) => Record<string, unknown>;
}

const placeholder = (name: keyof typeof orders.$inferInsert) => sql.placeholder(name);

/** The INSERT of POST /orders, built once per database handle: drizzle spends ~200 µs building it per call. */
const insertStatements = new WeakMap<Db, ReturnType<typeof prepareInsert>>();
const prepareInsert = (db: Db) =>
  db
    .insert(orders)
    .values({
      id: placeholder("id"),
      customer_id: placeholder("customer_id"),
      items: placeholder("items"),
      total_minor: placeholder("total_minor"),
      currency: placeholder("currency"),
      status: "pending_publish",
      idempotency_key: placeholder("idempotency_key"),
      request_hash: placeholder("request_hash"),
      created_event: placeholder("created_event"),
    })
    .onConflictDoNothing()
    .returning()
    .prepare("insert_order");

function insertStatement(db: Db): ReturnType<typeof prepareInsert> {
  let statement = insertStatements.get(db);
  if (!statement) {
    statement = prepareInsert(db);
    insertStatements.set(db, statement);
  }
  return statement;
}

/**
 * Stores a new order as `pending_publish` with its orders.created event (the outbox entry), or returns the
 * order an earlier request with the same Idempotency-Key made. Concurrent requests with one key meet on
 * the unique index: one inserts, the others read its row.
 */
export async function insertOrder(db: Db, input: NewOrder): Promise<{ order: Order; created: boolean }> {
  const id = newId("ord");
  const [inserted] = await insertStatement(db).execute({
    id,
    customer_id: input.request.customer_id,
    items: input.request.items,
    total_minor: input.total_minor,
    currency: input.request.currency,
    idempotency_key: input.idempotency_key ?? null,
    request_hash: input.request_hash,
    created_event: input.event(id),
  });
  if (inserted) return { order: inserted, created: true };
  const [existing] = input.idempotency_key
    ? await db.select().from(orders).where(eq(orders.idempotency_key, input.idempotency_key))
    : [];
  if (!existing) throw new Error("order insert conflicted but no order holds the idempotency key");
  return { order: existing, created: false };
}

export async function loadOrder(db: Db, id: string): Promise<Order | undefined> {
  const [row] = await db.select().from(orders).where(eq(orders.id, id));
  return row;
}

/** Ids waiting for the next write, per database handle (a Workers request has its own, so never shared). */
const toMark = new WeakMap<Db, { ids: string[]; written: Promise<void> }>();
const soon: (run: () => void) => void = globalThis.setImmediate ?? ((run) => setTimeout(run, 0));

/**
 * pending_publish → placed, unless an event already moved the order on. Orders published in the same
 * event-loop turn share one UPDATE: under load that is one statement for many POSTs instead of one each.
 */
export function markPublished(db: Db, id: string): Promise<void> {
  let pending = toMark.get(db);
  if (!pending) {
    const ids: string[] = [];
    const written = new Promise<void>((resolve, reject) =>
      soon(() => {
        toMark.delete(db);
        db.update(orders)
          .set({ status: "placed", updated_at: sql`now()` })
          .where(and(inArray(orders.id, ids), eq(orders.status, "pending_publish")))
          .then(() => resolve(), reject);
      }),
    );
    pending = { ids, written };
    toMark.set(db, pending);
  }
  pending.ids.push(id);
  return pending.written;
}

/** Orders whose event has not gone out yet, oldest first (for the outbox flush). */
export async function unpublished(db: Db, olderThanS: number, limit: number): Promise<Order[]> {
  return db
    .select()
    .from(orders)
    .where(
      and(
        eq(orders.status, "pending_publish"),
        lt(orders.created_at, sql`now() - make_interval(secs => ${olderThanS})`),
      ),
    )
    .orderBy(asc(orders.created_at))
    .limit(limit);
}
