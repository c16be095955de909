import { and, asc, eq, lt, sql } from "drizzle-orm";
import { anyOf, anyOfAt, asText, insertMissing } from "../db/arrays.ts";
import type { Db } from "../db/client.ts";
import { newId } from "../db/ids.ts";
import { perHandle, reusable } from "../db/prepared.ts";
import { orders } from "../db/schema.ts";
import { Coalescer } from "../sdk/coalesce.ts";
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

/**
 * INSERTs of new orders on their way at once, per database handle: two keep the pool busy while the next
 * group fills; more would split the groups without adding throughput.
 */
const INSERTS_IN_FLIGHT = 2;

const ORDER_COLUMNS = [
  "id",
  "customer_id",
  "items",
  "total_minor",
  "currency",
  "status",
  "idempotency_key",
  "request_hash",
  "created_event",
] as const;

/**
 * What POST /orders reads of a stored order. A new order's row is the one just built, so the INSERT returns
 * only which ids it stored: reading the rows back cost as much client CPU again, most of it the two JSON
 * documents (items, the created event) sent back and parsed.
 */
type PlacedOrder = Pick<Order, "id" | "status" | "request_hash" | "created_event">;
const PLACED_COLUMNS = {
  id: orders.id,
  status: orders.status,
  request_hash: orders.request_hash,
  created_event: orders.created_event,
  idempotency_key: orders.idempotency_key,
};

/** The INSERT of POST /orders, one text for every group size. */
const insertStatement = insertMissing<typeof orders, { id: string }>("insert_orders", orders, ORDER_COLUMNS, {
  id: orders.id,
});

type Placed = { order: PlacedOrder; created: boolean };

/** The row a NewOrder becomes (its id chosen here, so the outbox event can name it). */
function rowOf(input: NewOrder) {
  const id = newId("ord");
  return {
    id,
    customer_id: input.request.customer_id,
    items: input.request.items,
    total_minor: input.total_minor,
    currency: input.request.currency,
    idempotency_key: input.idempotency_key ?? null,
    request_hash: input.request_hash,
    created_event: input.event(id),
  };
}

type OrderRow = ReturnType<typeof rowOf>;

/**
 * One INSERT for a group of orders; an order whose Idempotency-Key is taken (by an earlier request or an
 * earlier order of the same group) gets the row that holds the key.
 */
async function insertRows(db: Db, rows: readonly OrderRow[]): Promise<(Placed | Error)[]> {
  const inserted = await insertStatement(
    db,
    rows.map((row) => ({ ...row, status: "pending_publish" })),
  );
  const stored = new Set(inserted.map((o) => o.id));
  const taken = rows.flatMap((r) =>
    stored.has(r.id) || r.idempotency_key === null ? [] : [r.idempotency_key],
  );
  const holders =
    taken.length === 0
      ? []
      : await db.select(PLACED_COLUMNS).from(orders).where(anyOf(orders.idempotency_key, taken));
  const byKey = new Map(holders.map((o) => [o.idempotency_key, o]));
  return rows.map((row) => {
    if (stored.has(row.id)) {
      const { id, request_hash, created_event } = row;
      return { order: { id, status: "pending_publish", request_hash, created_event }, created: true };
    }
    const existing = row.idempotency_key === null ? undefined : byKey.get(row.idempotency_key);
    return existing
      ? { order: existing, created: false }
      : new Error("order insert conflicted but no order holds the idempotency key");
  });
}

/**
 * insertRows for the group, or, when the database refuses the statement, for each order on its own: an
 * order the database refuses fails alone, not with the orders it happened to arrive with.
 */
async function insertGroup(db: Db, inputs: NewOrder[]): Promise<(Placed | Error)[]> {
  const rows = inputs.map(rowOf);
  try {
    return await insertRows(db, rows);
  } catch (error) {
    if (rows.length === 1) throw error;
    return Promise.all(
      rows.map((row) =>
        insertRows(db, [row]).then(
          ([placed]) => placed as Placed | Error,
          (cause: unknown) => (cause instanceof Error ? cause : new Error(String(cause))),
        ),
      ),
    );
  }
}

/** Orders waiting for the next INSERT, per database handle (a Workers request has its own, so never shared). */
const inserterOf = perHandle(
  (db) =>
    new Coalescer<NewOrder, Placed>((inputs) => insertGroup(db, inputs), { maxInFlight: INSERTS_IN_FLIGHT }),
);

/**
 * Stores a new order as `pending_publish` with its orders.created event (the outbox entry), or returns the
 * order an earlier request with the same Idempotency-Key made. Concurrent requests with one key meet on
 * the unique index: one inserts, the others read its row. Orders placed while an INSERT is on its way
 * share the next one: under load one statement and one commit carry many POSTs.
 */
export function insertOrder(db: Db, input: NewOrder): Promise<Placed> {
  return inserterOf(db).add(input);
}

export async function loadOrder(db: Db, id: string): Promise<Order | undefined> {
  const [row] = await db.select().from(orders).where(eq(orders.id, id));
  return row;
}

/** Ids waiting for the next write, per database handle. */
const markerOf = perHandle((db) => new Coalescer<string, undefined>((ids) => markGroup(db, ids)));

const markStatement = reusable("mark_published", (db) =>
  db
    .update(orders)
    .set({ status: "placed", updated_at: sql`now()` })
    .where(and(anyOfAt(orders.id, "ids"), eq(orders.status, "pending_publish"))),
);

async function markGroup(db: Db, ids: string[]): Promise<undefined[]> {
  await markStatement(db, { ids: asText(orders.id, ids) });
  return ids.map(() => undefined);
}

/**
 * pending_publish → placed, unless an event already moved the order on. Orders published together (in one
 * event-loop turn, or while the previous UPDATE ran) share one UPDATE.
 */
export function markPublished(db: Db, id: string): Promise<void> {
  return markerOf(db).add(id);
}

/**
 * Orders whose event has not gone out yet, for the outbox flush: those tried longest ago first (a failed
 * flush moves an order's updated_at, noteUnpublished), so orders whose events the ingress refuses for good
 * cannot keep newer ones from their turn.
 */
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
    .orderBy(asc(orders.updated_at), asc(orders.created_at))
    .limit(limit);
}

/** A flush tried these orders and their events did not go out: they go to the back of the queue. */
export async function noteUnpublished(db: Db, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db
    .update(orders)
    .set({ updated_at: sql`now()` })
    .where(and(anyOf(orders.id, ids), eq(orders.status, "pending_publish")));
}
