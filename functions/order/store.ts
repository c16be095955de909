import { and, asc, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { newId } from "../db/ids.ts";
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

type Placed = { order: Order; created: boolean };

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

/**
 * One INSERT for a group of orders; an order whose Idempotency-Key is taken (by an earlier request or an
 * earlier order of the same group) gets the row that holds the key.
 */
async function insertGroup(db: Db, inputs: NewOrder[]): Promise<(Placed | Error)[]> {
  const rows = inputs.map(rowOf);
  const inserted =
    rows.length === 1
      ? await insertStatement(db).execute(rows[0] as ReturnType<typeof rowOf>)
      : await db
          .insert(orders)
          .values(rows.map((row) => ({ ...row, status: "pending_publish" as const })))
          .onConflictDoNothing()
          .returning();
  const byId = new Map(inserted.map((o) => [o.id, o]));
  const taken = rows.flatMap((r) =>
    byId.has(r.id) || r.idempotency_key === null ? [] : [r.idempotency_key],
  );
  const holders =
    taken.length === 0 ? [] : await db.select().from(orders).where(inArray(orders.idempotency_key, taken));
  const byKey = new Map(holders.map((o) => [o.idempotency_key, o]));
  return rows.map((row) => {
    const mine = byId.get(row.id);
    if (mine) return { order: mine, created: true };
    const existing = row.idempotency_key === null ? undefined : byKey.get(row.idempotency_key);
    return existing
      ? { order: existing, created: false }
      : new Error("order insert conflicted but no order holds the idempotency key");
  });
}

/** Orders waiting for the next INSERT, per database handle (a Workers request has its own, so never shared). */
const inserters = new WeakMap<Db, Coalescer<NewOrder, Placed>>();

/**
 * Stores a new order as `pending_publish` with its orders.created event (the outbox entry), or returns the
 * order an earlier request with the same Idempotency-Key made. Concurrent requests with one key meet on
 * the unique index: one inserts, the others read its row. Orders placed while an INSERT is on its way
 * share the next one: under load one statement and one commit carry many POSTs.
 */
export function insertOrder(db: Db, input: NewOrder): Promise<Placed> {
  let inserter = inserters.get(db);
  if (!inserter) {
    inserter = new Coalescer<NewOrder, Placed>((inputs) => insertGroup(db, inputs), {
      maxInFlight: INSERTS_IN_FLIGHT,
    });
    inserters.set(db, inserter);
  }
  return inserter.add(input);
}

export async function loadOrder(db: Db, id: string): Promise<Order | undefined> {
  const [row] = await db.select().from(orders).where(eq(orders.id, id));
  return row;
}

/** Ids waiting for the next write, per database handle. */
const markers = new WeakMap<Db, Coalescer<string, undefined>>();

async function markGroup(db: Db, ids: string[]): Promise<undefined[]> {
  await db
    .update(orders)
    .set({ status: "placed", updated_at: sql`now()` })
    .where(and(inArray(orders.id, ids), eq(orders.status, "pending_publish")));
  return ids.map(() => undefined);
}

/**
 * pending_publish → placed, unless an event already moved the order on. Orders published together (in one
 * event-loop turn, or while the previous UPDATE ran) share one UPDATE.
 */
export function markPublished(db: Db, id: string): Promise<void> {
  let marker = markers.get(db);
  if (!marker) {
    marker = new Coalescer<string, undefined>((ids) => markGroup(db, ids));
    markers.set(db, marker);
  }
  return marker.add(id);
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
