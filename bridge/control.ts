import { type KV, type KvEntry, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type pino from "pino";
import type { Config } from "./config.ts";
import { MAX_TIMER_MS } from "./duration.ts";

/**
 * Operator pauses, shared by every replica: a JetStream key-value bucket (`control.bucket`) holds one key
 * per paused route, `pause.<route>` → PauseRecord. `jetway pause` writes it, `jetway resume` deletes it,
 * and every bridge watches the bucket and pauses or resumes its consumer of that route (consumer.ts holds
 * what arrives meanwhile, as an open circuit does). The server keeps the state, so a replica started
 * during a pause starts paused. Works on every JetStream server (2.9 included), unlike a consumer pause.
 */

const PAUSE_PREFIX = "pause.";

export interface PauseRecord {
  reason: string;
  /** When the pause ends by itself (ISO 8601); absent: until `jetway resume`. */
  until?: string | undefined;
  /** When it was set (ISO 8601), and who set it, as the CLI knows them. */
  at: string;
  by?: string | undefined;
}

/** What the watcher drives: one route's consumer. */
export interface Pausable {
  pause(reason: string): void;
  resume(): void;
}

export function pauseKey(route: string): string {
  return `${PAUSE_PREFIX}${route}`;
}

/** Creates the bucket if it is missing (idempotent) and opens it. */
export function openControl(
  nc: NatsConnection,
  control: Pick<Config["control"], "bucket" | "replicas">,
): Promise<KV> {
  return new Kvm(nc).create(control.bucket, {
    replicas: control.replicas,
    history: 1,
    description: "jetway operator controls: pause.<route> while a route is paused",
  });
}

/** The record under a key, or why it is not one. */
export function readPause(value: Uint8Array): PauseRecord | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(value));
  } catch {
    return "not JSON";
  }
  const record = parsed as Partial<PauseRecord> | null;
  if (typeof record?.reason !== "string") return "reason must be a string";
  if (record.until !== undefined && Number.isNaN(Date.parse(record.until))) {
    return "until must be an ISO 8601 time";
  }
  return record as PauseRecord;
}

/** Every pause in the bucket, by route. */
export async function listPauses(kv: KV): Promise<Map<string, PauseRecord | string>> {
  const out = new Map<string, PauseRecord | string>();
  for await (const key of await kv.keys(`${PAUSE_PREFIX}>`)) {
    const entry = await kv.get(key);
    if (entry && entry.operation === "PUT") out.set(key.slice(PAUSE_PREFIX.length), readPause(entry.value));
  }
  return out;
}

/** What the watcher needs of a key's latest entry. */
type PauseEntry = Pick<KvEntry, "revision" | "created" | "operation" | "value">;

/**
 * A bucket deleted and created again numbers its revisions from 1: an entry written clearly later than
 * the last one applied is newer whatever its revision. (Clearly: servers' clocks may differ a little.)
 */
const RECREATED_AFTER_MS = 1_000;

/**
 * Applies the bucket's pauses to this bridge's routes as they change, and ends a timed one when its
 * `until` passes (each replica on its own clock; the key stays until someone resumes or pauses again).
 *
 * The watch brings a change at once. It rides out reconnects, but after the loss of the node that led
 * the bucket it was seen deaf for ~60 s in 2 of 4 runs (its consumer is recreated only after missed
 * heartbeats, and its first attempts fail while the cluster elects), so each route's key is also read
 * every `pollMs`: a change is applied within that, whatever the watch is doing. Entries apply in revision
 * order, so a late read never undoes a newer change (a recreated bucket aside, see RECREATED_AFTER_MS).
 */
export class PauseWatcher {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** The entry last applied per route. */
  private readonly applied = new Map<string, { revision: number; createdMs: number }>();
  private stopWatching: (() => void) | undefined;
  private poller: NodeJS.Timeout | undefined;
  private stopped = false;

  private readonly kv: KV;
  private readonly routes: ReadonlyMap<string, Pausable>;
  private readonly log: pino.Logger;
  private readonly pollMs: number;

  constructor(kv: KV, routes: ReadonlyMap<string, Pausable>, log: pino.Logger, pollMs = 5_000) {
    this.kv = kv;
    this.routes = routes;
    this.log = log;
    this.pollMs = pollMs;
  }

  /** Applies what the bucket holds now, then follows it; resolves once the current pauses are applied. */
  async start(): Promise<void> {
    await this.readAll();
    const watch = await this.kv.watch({ key: `${PAUSE_PREFIX}>` });
    this.stopWatching = () => watch.stop();
    void (async () => {
      for await (const entry of watch) this.applyEntry(entry.key.slice(PAUSE_PREFIX.length), entry);
      // It ends with the connection, which only shutdown closes; anything else would leave the pauses to
      // the reads alone, so say so.
      if (!this.stopped) this.log.error("watching operator pauses ended: changes now arrive by polling only");
    })().catch((error: unknown) => {
      if (!this.stopped) this.log.error({ err: error }, "watching operator pauses failed");
    });
    this.poller = setInterval(() => {
      this.readAll().catch((error: unknown) => {
        this.log.debug({ err: error }, "reading operator pauses failed, will read again");
      });
    }, this.pollMs).unref();
  }

  /** Reads every route's key (a direct read each, no consumer) and applies what is newer. */
  private async readAll(): Promise<void> {
    const entries = await Promise.all(
      [...this.routes.keys()].map(async (route) => [route, await this.kv.get(pauseKey(route))] as const),
    );
    for (const [route, entry] of entries) if (entry) this.applyEntry(route, entry);
  }

  private applyEntry(route: string, entry: PauseEntry): void {
    if (this.stopped) return;
    const last = this.applied.get(route);
    const createdMs = entry.created.getTime();
    if (last && entry.revision <= last.revision && createdMs <= last.createdMs + RECREATED_AFTER_MS) return;
    this.applied.set(route, { revision: entry.revision, createdMs });
    this.apply(route, entry.operation === "PUT" ? readPause(entry.value) : undefined, createdMs);
  }

  /**
   * When a timed pause ends, on this machine's clock. The record's `until` is the CLI's clock: a laptop 15
   * minutes behind would write a `--for 10m` already over. Its length (`until` − `at`, one clock) counted
   * from when the NATS server stored it does not depend on the CLI's clock.
   */
  private static endsAt(record: PauseRecord, storedMs: number): number {
    const until = Date.parse(record.until ?? "");
    const at = Date.parse(record.at);
    return Number.isFinite(at) && until >= at ? storedMs + (until - at) : until;
  }

  private apply(route: string, record: PauseRecord | string | undefined, storedMs: number): void {
    const target = this.routes.get(route);
    if (!target) return;
    clearTimeout(this.timers.get(route));
    this.timers.delete(route);
    if (typeof record === "string") {
      // Someone meant to pause it: do, with no end, and say what is wrong with the record.
      this.log.warn({ route, problem: record }, "unreadable pause record: pausing until it is resumed");
      target.pause(`unreadable pause record (${record})`);
      return;
    }
    const left =
      record?.until === undefined
        ? Number.POSITIVE_INFINITY
        : PauseWatcher.endsAt(record, storedMs) - Date.now();
    if (!record || left <= 0) {
      target.resume();
      return;
    }
    target.pause(record.reason);
    if (left === Number.POSITIVE_INFINITY) return;
    // setTimeout holds at most ~24.8 days: a longer pause looks again when that is up.
    const timer = setTimeout(() => this.apply(route, record, storedMs), Math.min(left, MAX_TIMER_MS));
    this.timers.set(route, timer.unref());
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.poller);
    this.stopWatching?.();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
