import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { applyEvent, type OrderEvent, type OrderState } from "../order/status.ts";
import { DirStore } from "./dir-store.ts";
import type { AuditEntry, ObjectStore } from "./entry.ts";
import { s3StoreFromVars } from "./s3-store.ts";

type Data = Record<string, string>;

/** The order-facing meaning of an audited event, or undefined for events the read model ignores. */
function toOrderEvent(subject: string, d: Data): OrderEvent | undefined {
  switch (subject) {
    case "payments.completed.v1":
      return { kind: "payment_completed", payment_id: d.payment_id ?? "" };
    case "payments.failed.v1":
      return { kind: "payment_failed", reason: d.reason ?? "unknown" };
    case "inventory.reserved.v1":
      return { kind: "inventory_reserved", reservation_id: d.reservation_id ?? "" };
    case "inventory.rejected.v1":
      return { kind: "inventory_rejected", reason: d.reason ?? "unknown" };
    case "inventory.released.v1":
      return { kind: "inventory_released" };
    default:
      return undefined;
  }
}

const placed = (): OrderState => ({
  status: "placed",
  payment_status: "pending",
  inventory_status: "pending",
  payment_id: null,
  reservation_id: null,
  cancel_reason: null,
});

/** Every entry of the log, in the order events happened: by time, then stream and sequence. */
export async function readLog(store: ObjectStore): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  for (const key of await store.list()) {
    const text = await store.get(key);
    // Listed but not there: a key read back wrong would drop an entry from the replay without a word.
    if (text === undefined) throw new Error(`audit log lists ${key} but has no entry under it`);
    entries.push(JSON.parse(text) as AuditEntry);
  }
  return entries.sort(
    (a, b) => a.time.localeCompare(b.time) || a.stream.localeCompare(b.stream) || a.seq - b.seq,
  );
}

/**
 * Rebuilds the order read model (status by order id) from the log alone, with the same state machine
 * the order function runs — so the rebuilt statuses must equal the live ones.
 */
export async function replay(store: ObjectStore): Promise<Map<string, OrderState>> {
  const orders = new Map<string, OrderState>();
  for (const entry of await readLog(store)) {
    const data = entry.data as Data;
    const id = data.order_id;
    if (!id) continue;
    if (entry.subject === "orders.created.v1") {
      if (!orders.has(id)) orders.set(id, placed());
      continue;
    }
    const event = toOrderEvent(entry.subject, data);
    if (event) orders.set(id, applyEvent(orders.get(id) ?? placed(), event));
  }
  return orders;
}

// `node functions/audit/replay.ts [--dir D]` prints { "<order id>": { status, … } } as JSON.
if (import.meta.main) {
  const { values } = parseArgs({ options: { dir: { type: "string" } } });
  const dir = values.dir ?? process.env.AUDIT_DIR ?? ".jetway/audit";
  const s3 = values.dir ? undefined : s3StoreFromVars(process.env);
  if (!s3 && !existsSync(dir)) {
    // An empty model would read as "no orders": say that there is no log here instead.
    process.stderr.write(`replay: no audit log at ${dir} (give --dir, or AUDIT_DIR)\n`);
    process.exit(2);
  }
  const model = await replay(s3 ?? new DirStore(dir));
  process.stdout.write(`${JSON.stringify(Object.fromEntries(model), null, 2)}\n`);
}
