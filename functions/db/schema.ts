import { sql } from "drizzle-orm";
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  varchar,
} from "drizzle-orm/pg-core";

/*
 * One schema for the reference domain. Each function owns its own tables (order → orders, payment →
 * payments, inventory → stock + reservations) and never reads another's, so the tables carry no foreign
 * keys and can live in separate databases. Statuses are text with CHECK constraints rather than pg enums:
 * enums are created schema-qualified, which would defeat the per-test-schema isolation.
 */

export interface LineItem {
  sku: string;
  quantity: number;
  unit_price_minor: number;
}

export interface ReservedItem {
  sku: string;
  quantity: number;
}

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp("updated_at", { withTimezone: true }).notNull().defaultNow();

export const ORDER_STATUSES = ["pending_publish", "placed", "confirmed", "cancelled"] as const;
export const PAYMENT_STATUSES = ["pending", "paid", "failed"] as const;
export const INVENTORY_STATUSES = ["pending", "reserved", "rejected", "released"] as const;

export type OrderStatus = (typeof ORDER_STATUSES)[number];
export type OrderPaymentStatus = (typeof PAYMENT_STATUSES)[number];
export type OrderInventoryStatus = (typeof INVENTORY_STATUSES)[number];

const oneOf = (column: string, values: readonly string[]) =>
  sql.raw(`"${column}" in (${values.map((v) => `'${v}'`).join(", ")})`);

export const orders = pgTable(
  "orders",
  {
    id: text("id").primaryKey(),
    customer_id: text("customer_id").notNull(),
    items: jsonb("items").$type<LineItem[]>().notNull(),
    total_minor: bigint("total_minor", { mode: "number" }).notNull(),
    currency: varchar("currency", { length: 3 }).notNull(),
    status: text("status").$type<OrderStatus>().notNull(),
    payment_status: text("payment_status").$type<OrderPaymentStatus>().notNull().default("pending"),
    inventory_status: text("inventory_status").$type<OrderInventoryStatus>().notNull().default("pending"),
    payment_id: text("payment_id"),
    reservation_id: text("reservation_id"),
    cancel_reason: text("cancel_reason"),
    /** When the order became confirmed or cancelled: the stable occurred_at of that event. */
    finalized_at: timestamp("finalized_at", { withTimezone: true }),
    idempotency_key: text("idempotency_key").unique(),
    /** SHA-256 of the request body: a reused Idempotency-Key with a different body is refused. */
    request_hash: text("request_hash").notNull(),
    /** The orders.created.v1 payload, kept as an outbox entry so a retry republishes the identical event. */
    created_event: jsonb("created_event").$type<Record<string, unknown>>().notNull(),
    created_at: createdAt(),
    updated_at: updatedAt(),
  },
  (t) => [
    check("orders_status_check", oneOf("status", ORDER_STATUSES)),
    check("orders_payment_status_check", oneOf("payment_status", PAYMENT_STATUSES)),
    check("orders_inventory_status_check", oneOf("inventory_status", INVENTORY_STATUSES)),
    check("orders_total_check", sql`${t.total_minor} >= 0`),
  ],
);

/** `cancelled`: the order was refused before it was charged, so it never will be. */
export const PAYMENT_ROW_STATUSES = ["pending", "succeeded", "declined", "refunded", "cancelled"] as const;
export type PaymentStatus = (typeof PAYMENT_ROW_STATUSES)[number];

export const payments = pgTable(
  "payments",
  {
    id: text("id").primaryKey(),
    /** One payment per order, whatever message asked for it. */
    order_id: text("order_id").notNull().unique(),
    /** The orders.created message that started it; a redelivery cannot insert a second row. */
    message_id: text("message_id").notNull().unique(),
    gateway_charge_id: text("gateway_charge_id"),
    amount_minor: bigint("amount_minor", { mode: "number" }).notNull(),
    currency: varchar("currency", { length: 3 }).notNull(),
    status: text("status").$type<PaymentStatus>().notNull().default("pending"),
    failure_reason: text("failure_reason"),
    /** The gateway refund, when the order was cancelled after the charge succeeded. */
    refund_id: text("refund_id"),
    /** When the charge's outcome was recorded: the stable occurred_at of the outcome event. */
    settled_at: timestamp("settled_at", { withTimezone: true }),
    created_at: createdAt(),
    updated_at: updatedAt(),
  },
  () => [check("payments_status_check", oneOf("status", PAYMENT_ROW_STATUSES))],
);

export const stock = pgTable(
  "stock",
  {
    sku: text("sku").primaryKey(),
    available: integer("available").notNull(),
    updated_at: updatedAt(),
  },
  (t) => [check("stock_available_check", sql`${t.available} >= 0`)],
);

export type ReservationStatus = "reserved" | "released" | "rejected";

export const reservations = pgTable(
  "reservations",
  {
    id: text("id").primaryKey(),
    order_id: text("order_id").notNull().unique(),
    items: jsonb("items").$type<ReservedItem[]>().notNull(),
    status: text("status").$type<ReservationStatus>().notNull(),
    /** Why it was rejected or released, as a snake_case code. */
    reason: text("reason"),
    /** For a rejection: the SKUs that could not be reserved. */
    rejected_skus: jsonb("rejected_skus").$type<string[]>(),
    created_at: createdAt(),
    updated_at: updatedAt(),
  },
  () => [check("reservations_status_check", oneOf("status", ["reserved", "released", "rejected"]))],
);

/** Messages a consumer has already applied: insert-or-skip in the same transaction as the effect. */
export const processedMessages = pgTable(
  "processed_messages",
  {
    consumer: text("consumer").notNull(),
    message_id: text("message_id").notNull(),
    processed_at: timestamp("processed_at", { withTimezone: true }).notNull().defaultNow(),
  },
  // BRIN: rows arrive in processed_at order, so a few block ranges find the old ones for pruning, at almost
  // no cost to the inserts (a B-tree would add an entry per row).
  (t) => [
    primaryKey({ columns: [t.consumer, t.message_id] }),
    index("processed_messages_processed_at_brin").using("brin", t.processed_at),
  ],
);
