import { type KV, KvWatchInclude } from "@nats-io/kv";
import type pino from "pino";

/**
 * Tells the other replicas of a route when its circuit opens here, so that they open theirs at their next
 * failure instead of after `failures` more (Circuit.openedElsewhere): at a low rate spread over many
 * replicas, each would otherwise spend its own `failures` attempts on the outage. A put of `open.<route>`
 * in the control bucket per opening (after failures in a row here, not a failed probe or a hint), watched
 * by every replica for changes only: a record left from an earlier outage opens nothing. A hint that the
 * watch misses (it can go deaf for a while after the bucket's leader is lost, control.ts) costs only the
 * attempts it would have saved.
 */

const OPEN_PREFIX = "open.";

export interface OpenRecord {
  /** The replica whose circuit opened (presence.ts's id). */
  by: string;
  reason: string;
  at: string;
}

/** What a hint drives: one route's circuit on this replica. */
export interface HintedRoute {
  openedElsewhere(reason: string): void;
}

export class CircuitHints {
  private readonly kv: KV;
  private readonly routes: ReadonlyMap<string, HintedRoute>;
  private readonly id: string;
  private readonly log: pino.Logger;
  private stopWatching: (() => void) | undefined;
  private stopped = false;

  constructor(kv: KV, routes: ReadonlyMap<string, HintedRoute>, id: string, log: pino.Logger) {
    this.kv = kv;
    this.routes = routes;
    this.id = id;
    this.log = log;
  }

  /** Follows the other replicas' openings from now on. */
  async start(): Promise<void> {
    const watch = await this.kv.watch({ key: `${OPEN_PREFIX}>`, include: KvWatchInclude.UpdatesOnly });
    this.stopWatching = () => watch.stop();
    void (async () => {
      for await (const entry of watch) {
        if (entry.operation !== "PUT") continue;
        const route = entry.key.slice(OPEN_PREFIX.length);
        const record = readOpen(entry.string());
        if (!record || record.by === this.id || this.stopped) continue;
        this.log.info({ route, by: record.by }, "another replica's circuit opened");
        this.routes.get(route)?.openedElsewhere(record.reason);
      }
    })().catch((error: unknown) => {
      if (!this.stopped) this.log.warn({ err: error }, "watching other replicas' circuits failed");
    });
  }

  /** Tells the others that this replica's circuit for `route` opened after failures in a row. */
  announce(route: string, reason: string): void {
    const record: OpenRecord = { by: this.id, reason, at: new Date().toISOString() };
    this.kv.put(`${OPEN_PREFIX}${route}`, JSON.stringify(record)).catch((error: unknown) => {
      this.log.warn({ route, err: error }, "telling other replicas of the open circuit failed");
    });
  }

  stop(): void {
    this.stopped = true;
    this.stopWatching?.();
  }
}

function readOpen(text: string): OpenRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<OpenRecord> | null;
    return typeof r?.by === "string" && typeof r.reason === "string" ? (r as OpenRecord) : undefined;
  } catch {
    return undefined;
  }
}
