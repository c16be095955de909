import { hostname } from "node:os";
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type pino from "pino";
import type { Config } from "./config.ts";

/**
 * Which replicas share each rate-limited route, so that they split its `rate_limit` between them instead
 * of each sending at the whole of it (and KEDA multiplying it as it adds replicas).
 *
 * Each replica keeps a key `<route>.<replica>` per rate-limited route in a key-value bucket whose entries
 * expire (`<control.bucket>-presence`, max age PRESENCE_TTL_MS), puts it again every PRESENCE_INTERVAL_MS,
 * and counts the route's keys as often: one stream-info request, no consumer. A replica that stops purges
 * its keys, so the others take up its share within two intervals (ReplicaCount); one that dies is forgotten
 * when its keys expire, and until then the others send less than the limit, never more. A replica that joins waits an
 * interval and a half (JOIN_WAITS) before its first count, by which time every other replica has counted it.
 */

export const PRESENCE_INTERVAL_MS = 1_000;
/** A few missed puts (a slow event loop, a reconnect) do not make a replica look gone. */
export const PRESENCE_TTL_MS = 5 * PRESENCE_INTERVAL_MS;
/** In intervals: the others' next count comes within one, and timers drift. */
const JOIN_WAITS = 1.5;
const STOP_WAIT_MS = 2_000;

export const presenceBucket = (control: Pick<Config["control"], "bucket">) => `${control.bucket}-presence`;

/** Creates the bucket if it is missing (idempotent) and opens it. */
export function openPresence(
  nc: NatsConnection,
  control: Pick<Config["control"], "bucket" | "replicas">,
  ttlMs = PRESENCE_TTL_MS,
): Promise<KV> {
  return new Kvm(nc).create(presenceBucket(control), {
    replicas: control.replicas,
    history: 1,
    ttl: ttlMs,
    description: "jetway bridge replicas per rate-limited route: <route>.<replica>, expiring",
  });
}

/** This process's name in the bucket: readable in `nats kv ls`, unique across restarts. */
export function replicaId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, "_");
  return `${host}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * The replicas announced per route, and every key: one stream-info request. A bucket not created yet
 * (no rate-limited route has run) holds none.
 */
export async function countReplicas(
  jsm: JetStreamManager,
  bucket: string,
): Promise<{ replicas: Map<string, number>; keys: Set<string> }> {
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams
    .info(`KV_${bucket}`, { subjects_filter: `${prefix}>` })
    .catch((error: unknown) => {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)
        return undefined;
      throw error;
    });
  const replicas = new Map<string, number>();
  const keys = new Set<string>();
  for (const subject of Object.keys(info?.state.subjects ?? {})) {
    const key = subject.slice(prefix.length);
    keys.add(key);
    const route = key.slice(0, key.indexOf("."));
    replicas.set(route, (replicas.get(route) ?? 0) + 1);
  }
  return { replicas, keys };
}

/**
 * One route's count of replicas, from readings taken every interval. More replicas (a smaller share) apply
 * at once; fewer only when two readings in a row say so. A key can be missing from one reading without its
 * replica having gone: its put was late, or the bucket's leader changed and expired every key at once (a
 * NATS outage longer than the keys' max age), and the others' puts came back one by one. Acting on such a
 * reading would send above the limit for an interval.
 */
export class ReplicaCount {
  private applied: number | undefined;
  private lower = 0;

  /** The count to apply after this reading, or undefined when it stays as it is. */
  read(replicas: number): number | undefined {
    if (replicas === this.applied) {
      this.lower = 0;
      return undefined;
    }
    if (this.applied !== undefined && replicas < this.applied && ++this.lower < 2) return undefined;
    this.lower = 0;
    this.applied = replicas;
    return replicas;
  }
}

/** What presence drives: a route's share of its limit. */
export interface RateShared {
  shareRateLimit(replicas: number): void;
}

export interface PresenceOptions {
  kv: KV;
  jsm: JetStreamManager;
  bucket: string;
  /** The rate-limited routes of this replica, by name. */
  routes: ReadonlyMap<string, RateShared>;
  log: pino.Logger;
  id?: string;
  intervalMs?: number;
}

export class RatePresence {
  readonly id: string;
  private readonly o: PresenceOptions;
  private readonly stream: string;
  private readonly intervalMs: number;
  private readonly counts = new Map<string, ReplicaCount>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(options: PresenceOptions) {
    this.o = options;
    this.id = options.id ?? replicaId();
    this.stream = `KV_${options.bucket}`;
    this.intervalMs = options.intervalMs ?? PRESENCE_INTERVAL_MS;
    for (const route of options.routes.keys()) this.counts.set(route, new ReplicaCount());
  }

  /**
   * Announces this replica, waits until the others have counted it, then applies the first count. May be
   * called again after it failed (start-up retries it while JetStream is not ready).
   */
  async start(): Promise<void> {
    await this.announce();
    await new Promise((r) => setTimeout(r, JOIN_WAITS * this.intervalMs));
    await this.count();
    if (this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs).unref();
  }

  private ticking = false;

  private async tick(): Promise<void> {
    // A slow NATS makes a tick outlast the interval: one at a time.
    if (this.stopped || this.ticking) return;
    this.ticking = true;
    try {
      await this.announce();
      await this.count();
    } catch (error) {
      // The last count stands: NATS away means nothing is delivered meanwhile either.
      this.o.log.debug({ err: error }, "presence update failed, will try again");
    } finally {
      this.ticking = false;
    }
  }

  private key(route: string): string {
    return `${route}.${this.id}`;
  }

  private async announce(): Promise<void> {
    const at = new Date().toISOString();
    await Promise.all([...this.o.routes.keys()].map((route) => this.o.kv.put(this.key(route), at)));
  }

  private async count(): Promise<void> {
    if (this.stopped) return;
    const { replicas: seen, keys } = await countReplicas(this.o.jsm, this.o.bucket);
    for (const [route, target] of this.o.routes) {
      // This replica counts whether or not its own put got through.
      const reading = (seen.get(route) ?? 0) + (keys.has(this.key(route)) ? 0 : 1);
      const replicas = this.counts.get(route)?.read(reading);
      if (replicas === undefined) continue;
      this.o.log.info({ route, replicas }, "rate limit shared");
      target.shareRateLimit(replicas);
    }
  }

  /** Stops announcing and removes this replica's keys, so the others take up its share at their next count. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const purged = Promise.all(
      [...this.o.routes.keys()].map((route) =>
        this.o.jsm.streams.purge(this.stream, { filter: `$KV.${this.o.bucket}.${this.key(route)}` }),
      ),
    );
    // Shutdown does not wait on a NATS that is away: the keys expire by themselves.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no answer within 2s")), STOP_WAIT_MS);
    });
    await Promise.race([purged, late])
      .catch((error: unknown) => {
        this.o.log.warn({ err: error }, "removing this replica's presence failed: it expires by itself");
      })
      .finally(() => clearTimeout(timer));
  }
}
